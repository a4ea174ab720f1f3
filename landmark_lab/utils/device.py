"""Devices: a user's device setting resolved to one that exists here, and whether the model hub answers."""

from __future__ import annotations

import socket
from typing import Any

from landmark_lab.errors import ConfigError


def device(value: Any, key: str) -> str:
    """A torch device string that exists here (``auto``, ``cpu``, ``cuda``, ``cuda:N``, ``mps``)."""
    import torch

    v = str(value)
    if v == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if v == "cpu":
        return v
    if v == "cuda" or v.startswith("cuda:"):
        n = torch.cuda.device_count()
        index = int(v.split(":")[1]) if ":" in v and v.split(":")[1].isdigit() else 0
        if n == 0:
            raise ConfigError(f"{key}={v}: no CUDA GPU is visible on this machine; use {key}=cpu or {key}=auto.")
        if index >= n:
            raise ConfigError(f"{key}={v}: this machine has {n} CUDA GPU(s) (cuda:0..cuda:{n - 1}).")
        return v
    if v == "mps":
        if not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
            raise ConfigError(f"{key}=mps: Apple's MPS backend is not available here; use {key}=cpu or {key}=auto.")
        return v
    raise ConfigError(f"{key}={v!r} is not a device; use auto, cpu, cuda, cuda:N or mps.")


def hub_reachable(host: str = "huggingface.co", timeout: float = 3.0) -> bool:
    """Whether the model hub answers at all (one TCP connect, a few seconds at most)."""
    try:
        with socket.create_connection((host, 443), timeout=timeout):
            return True
    except OSError:
        return False
