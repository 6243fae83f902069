"""Execution providers (worker/serving/device.py): CUDA only where a GPU really is, with the options the
settings give; `--device cuda` on a machine without one is one line and exit 2."""

from __future__ import annotations

import logging

import pytest

from worker.serving import device
from worker.serving.device import CPU, CUDA, CudaOptions, DeviceError, choose_providers, cuda_device_count
from worker.settings import WorkerSettings


def test_cpu_machine_gets_the_cpu_provider_without_asking_for_cuda() -> None:
    assert choose_providers("cpu") == [CPU]
    if cuda_device_count() == 0:  # CI and the development machine have no GPU
        assert choose_providers("auto") == [CPU]
        with pytest.raises(RuntimeError, match="--device cuda"):
            choose_providers("cuda")


def test_cuda_provider_options_have_sensible_defaults() -> None:
    assert CudaOptions().provider_options() == {"device_id": "0", "cudnn_conv_algo_search": "HEURISTIC"}
    opts = CudaOptions(device_id=1, mem_limit_bytes=2 << 30, conv_algo_search="EXHAUSTIVE", cuda_graph=True)
    assert opts.provider_options() == {
        "device_id": "1",
        "cudnn_conv_algo_search": "EXHAUSTIVE",
        "gpu_mem_limit": str(2 << 30),
        "enable_cuda_graph": "1",
    }


def test_settings_give_the_cuda_options(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WORKER_CUDNN_CONV_ALGO_SEARCH", "DEFAULT")
    s = WorkerSettings(cuda_device_id=2, cuda_mem_limit_bytes=1000, cuda_graphs=True)
    assert s.cuda_options() == CudaOptions(2, 1000, "DEFAULT", True)
    assert WorkerSettings().io_binding == "auto" and WorkerSettings().cuda_graphs is False


def pretend_gpus(monkeypatch: pytest.MonkeyPatch, gpus: int, cuda_build: bool = True) -> None:
    monkeypatch.setattr(device, "cuda_device_count", lambda: gpus)
    have = [CUDA, CPU] if cuda_build else [CPU]
    monkeypatch.setattr(device.ort, "get_available_providers", lambda: have)


def test_a_gpu_gets_cuda_with_its_options_then_cpu(monkeypatch, caplog) -> None:
    pretend_gpus(monkeypatch, 2)
    caplog.set_level(logging.INFO, "worker.serving.device")
    cuda = CudaOptions(device_id=1, mem_limit_bytes=123)
    providers = choose_providers("auto", cuda)
    assert providers == [(CUDA, {"device_id": "1", "cudnn_conv_algo_search": "HEURISTIC",
                                 "gpu_mem_limit": "123"}), CPU]  # fmt: skip
    assert "--device auto: CUDA on GPU 1 of 2" in caplog.text
    assert choose_providers("cuda")[0][0] == CUDA
    assert choose_providers("cpu", cuda) == [CPU]


@pytest.mark.parametrize(
    ("gpus", "cuda_build", "cuda", "why"),
    [
        (0, True, CudaOptions(), "no CUDA GPU is visible"),
        (1, False, CudaOptions(), "has no CUDA provider: install onnxruntime-gpu"),
        (1, True, CudaOptions(device_id=1), "--cuda-device-id 1 but 1 GPU(s) are visible"),
    ],
)
def test_no_usable_gpu_is_one_line_for_cuda_and_the_cpu_for_auto(monkeypatch, caplog, gpus, cuda_build, cuda,
                                                                  why) -> None:  # fmt: skip
    pretend_gpus(monkeypatch, gpus, cuda_build)
    with pytest.raises(DeviceError) as raised:
        choose_providers("cuda", cuda)
    assert why in str(raised.value) and "\n" not in str(raised.value)
    caplog.set_level(logging.INFO, "worker.serving.device")
    assert choose_providers("auto", cuda) == [CPU]
    assert "--device auto: CPU (" in caplog.text and why in caplog.text


def test_cuda_graphs_on_the_cpu_are_ignored_with_a_log_line(monkeypatch, caplog) -> None:
    pretend_gpus(monkeypatch, 0)
    caplog.set_level(logging.INFO, "worker.serving.device")
    assert choose_providers("auto", CudaOptions(cuda_graph=True)) == [CPU]
    assert choose_providers("cpu", CudaOptions(cuda_graph=True)) == [CPU]
    ignored = [r for r in caplog.records if "--cuda-graphs is ignored" in r.getMessage()]
    assert len(ignored) == 2 and all(r.levelno == logging.WARNING for r in ignored)


@pytest.mark.skipif(cuda_device_count() > 0, reason="this machine has a GPU")
def test_cli_device_cuda_without_a_gpu_is_one_line_and_exit_2(tmp_path) -> None:
    from tests.test_worker_cli import run_worker

    done = run_worker("--device", "cuda", "--model-repository", str(tmp_path))
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "--device cuda: no CUDA GPU is visible" in lines[0], done.stderr
    assert "Traceback" not in done.stderr
