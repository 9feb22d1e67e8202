"""What this worker runs on: the device, its memory, host memory, library versions."""

import platform

import psutil


def probe() -> dict:
    import peft
    import torch
    import transformers

    info = {
        "device_type": "cpu",
        "device_name": platform.processor() or platform.machine(),
        "device_memory_total": None,
        "device_memory_free": None,
        "host_memory_total": psutil.virtual_memory().total,
        "host_memory_available": psutil.virtual_memory().available,
        "library_versions": {
            "torch": torch.__version__,
            "transformers": transformers.__version__,
            "peft": peft.__version__,
            "python": platform.python_version(),
        },
    }
    if torch.cuda.is_available():
        free, total = torch.cuda.mem_get_info()
        info.update(
            device_type="cuda",
            device_name=torch.cuda.get_device_name(0),
            device_memory_total=total,
            device_memory_free=free,
        )
    return info


def torch_device() -> str:
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def memory_budget(device_type: str, configured_gpu: int, configured_host: int) -> int:
    """Bytes of models the cache may hold: configured, else 80% of the GPU or 50% of RAM."""
    if device_type == "cuda":
        import torch

        return configured_gpu or int(torch.cuda.mem_get_info()[1] * 0.8)
    return configured_host or int(psutil.virtual_memory().total * 0.5)
