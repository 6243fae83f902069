"""Execution providers (worker/device.py): CUDA only where a GPU really is."""

from __future__ import annotations

import pytest

from worker.device import CPU, choose_providers, cuda_device_count


def test_cpu_machine_gets_the_cpu_provider_without_asking_for_cuda() -> None:
    assert choose_providers("cpu") == [CPU]
    if cuda_device_count() == 0:  # CI and the development machine have no GPU
        assert choose_providers("auto") == [CPU]
        with pytest.raises(RuntimeError, match="--device cuda"):
            choose_providers("cuda")
