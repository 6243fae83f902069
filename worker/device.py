"""Which onnxruntime execution providers to ask for, decided without asking onnxruntime to fail.

onnxruntime-gpu lists CUDAExecutionProvider even on a machine without a GPU and logs an
error when a session asks for it (FIELD-NOTES). So look for a GPU first: the CUDA
driver library must load and report at least one device.
"""

from __future__ import annotations

import ctypes
import logging

import onnxruntime as ort

log = logging.getLogger(__name__)

CUDA = "CUDAExecutionProvider"
CPU = "CPUExecutionProvider"


class DeviceError(RuntimeError):
    pass


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


def choose_providers(device: str) -> list[str]:
    """Providers for `--device` auto|cuda|cpu; CUDA only when a GPU and the CUDA build are both there."""
    if device == "cpu":
        return [CPU]
    has_gpu = cuda_device_count() > 0
    has_cuda_build = CUDA in ort.get_available_providers()
    if has_gpu and has_cuda_build:
        return [CUDA, CPU]
    if device == "cuda":
        why = "no CUDA GPU is visible" if not has_gpu else "this onnxruntime has no CUDA provider"
        raise DeviceError(f"--device cuda: {why}; use --device auto or cpu")
    return [CPU]
