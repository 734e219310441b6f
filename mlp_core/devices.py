"""Which devices can train here: the CPU, each CUDA GPU, Apple's MPS."""

import torch

from .errors import UserError


class DeviceError(UserError, ValueError):
    """A device was asked for that this machine does not have."""


def usable_devices() -> list[tuple[str, str]]:
    """(device, label) pairs for a chooser, e.g. ('cuda:0', 'cuda:0 (NVIDIA H100)')."""
    devices = [("cpu", "cpu")]
    if torch.cuda.is_available():
        for i in range(torch.cuda.device_count()):
            devices.append((f"cuda:{i}", f"cuda:{i} ({torch.cuda.get_device_name(i)})"))
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        devices.append(("mps", "mps (Apple GPU)"))
    return devices


def resolve_device(name: str) -> torch.device:
    """Turn 'cpu', 'cuda', 'cuda:N' or 'mps' into a device that exists, or raise DeviceError."""
    try:
        device = torch.device(name)
    except (RuntimeError, TypeError):
        raise DeviceError(f"{name!r} is not a device name: use cpu, cuda, cuda:N or mps.") from None
    if device.type == "cuda" and device.index is None and torch.cuda.is_available():
        device = torch.device("cuda:0")
    known = {d for d, _ in usable_devices()}
    if str(device) not in known:
        raise DeviceError(
            f"Device {name!r} is not available here; usable: {', '.join(sorted(known))}."
        )
    return device
