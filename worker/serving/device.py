"""Which onnxruntime execution providers to ask for, and with which options, decided without asking
onnxruntime to fail.

onnxruntime-gpu lists CUDAExecutionProvider even on a machine without a GPU and logs an
error when a session asks for it (FIELD-NOTES). So look for a GPU first: the CUDA
driver library must load and report at least one device.
"""

from __future__ import annotations

import ctypes
import logging
import weakref
from dataclasses import dataclass
from typing import Literal

import numpy as np
import onnxruntime as ort

log = logging.getLogger(__name__)

CUDA = "CUDAExecutionProvider"
CPU = "CPUExecutionProvider"

ConvAlgoSearch = Literal["EXHAUSTIVE", "HEURISTIC", "DEFAULT"]
# What InferenceSession(providers=...) takes: a name, or a name and its options.
Provider = str | tuple[str, dict[str, str]]


class DeviceError(RuntimeError):
    """A --device (or CUDA option) this machine cannot honour: a configuration error (exit 2)."""


@dataclass(frozen=True)
class CudaOptions:
    """The CUDA execution provider's options the worker exposes as settings (--cuda-*).

    cudnn_conv_algo_search: onnxruntime's default is EXHAUSTIVE, which benchmarks every cuDNN
    convolution algorithm the first time it meets an input shape. The worker's batches take any size
    from 1 to --max-batch, so each new size would pay that search on the hot path: HEURISTIC (cuDNN's
    own ranking, no benchmarking) is the default here.
    """

    device_id: int = 0
    mem_limit_bytes: int = 0  # 0: no limit (onnxruntime's SIZE_MAX)
    conv_algo_search: ConvAlgoSearch = "HEURISTIC"
    cuda_graph: bool = False  # needs IO binding with fixed device buffers (worker/score.py)

    def provider_options(self) -> dict[str, str]:
        """The options as onnxruntime's CUDA provider takes them (strings)."""
        opts = {"device_id": str(self.device_id), "cudnn_conv_algo_search": self.conv_algo_search}
        if self.mem_limit_bytes:
            opts["gpu_mem_limit"] = str(self.mem_limit_bytes)
        if self.cuda_graph:
            opts["enable_cuda_graph"] = "1"
        return opts


def cuda_device_count() -> int:
    """GPUs the CUDA driver sees; 0 when there is no driver or no device."""
    for name in ("libcuda.so.1", "libcuda.so"):
        try:
            lib = ctypes.CDLL(name)
        except OSError:
            continue
        count = ctypes.c_int(0)
        if lib.cuInit(0) != 0 or lib.cuDeviceGetCount(ctypes.byref(count)) != 0:
            return 0
        return count.value
    return 0


def choose_providers(device: str, cuda: CudaOptions | None = None) -> list[Provider]:
    """Providers for `--device` auto|cuda|cpu; CUDA (with its options) only when a GPU and the CUDA
    build are both there. Logs which it took; DeviceError (one line) when cuda cannot be had."""
    cuda = cuda or CudaOptions()
    if device == "cpu":
        _cpu_ignores(cuda, "--device cpu")
        return [CPU]
    gpus = cuda_device_count()
    has_cuda_build = CUDA in ort.get_available_providers()
    if gpus and has_cuda_build and cuda.device_id < gpus:
        log.info("--device %s: CUDA on GPU %d of %d (onnxruntime %s)", device, cuda.device_id, gpus,
                 ort.__version__)  # fmt: skip
        return [(CUDA, cuda.provider_options()), CPU]
    if not gpus:
        why = "no CUDA GPU is visible"
    elif not has_cuda_build:
        why = f"this onnxruntime ({ort.__version__}) has no CUDA provider: install onnxruntime-gpu"
    else:
        why = f"--cuda-device-id {cuda.device_id} but {gpus} GPU(s) are visible"
    if device == "cuda":
        raise DeviceError(f"--device cuda: {why}; use --device auto or cpu")
    log.info("--device auto: CPU (%s)", why)
    _cpu_ignores(cuda, "scoring on the CPU")
    return [CPU]


def _cpu_ignores(cuda: CudaOptions, why: str) -> None:
    if cuda.cuda_graph:
        log.warning("--cuda-graphs is ignored: %s (CUDA graphs exist only on a GPU)", why)


_pin_failed: list[str] = []  # why page-locking failed, said once


CUDA_HOST_REGISTER_PORTABLE = 1


def pin_host_memory(array: np.ndarray) -> bool:
    """Page-lock `array`'s memory for CUDA (cudaHostRegister through the CUDA runtime library), so a
    copy to the device goes straight from it; unregistered when the array is freed. `array` must own
    its memory (not a view). False, logged once, where that cannot be done: the array stays pageable."""
    if _pin_failed:
        return False
    for name in ("libcudart.so.13", "libcudart.so.12", "libcudart.so"):
        try:
            lib = ctypes.CDLL(name)
        except OSError:
            continue
        address = ctypes.c_void_p(array.ctypes.data)
        # portable: pinned for every device's context, not only the current one (--cuda-device-id)
        err = lib.cudaHostRegister(address, ctypes.c_size_t(array.nbytes), CUDA_HOST_REGISTER_PORTABLE)
        if err == 0:
            weakref.finalize(array, lib.cudaHostUnregister, address)  # before its memory is freed
            return True
        _pin_failed.append(f"cudaHostRegister returned {err}")
        break
    else:
        _pin_failed.append("no CUDA runtime library (libcudart) loads")
    log.info("batch rows stay in pageable memory: %s", _pin_failed[0])
    return False


def provider_names(providers: list[Provider]) -> list[str]:
    return [p if isinstance(p, str) else p[0] for p in providers]
