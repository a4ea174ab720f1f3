"""Config resolvers for values that depend on the machine: ``${lab.cpus:}`` and ``${lab.gpu_precision:}``."""

from __future__ import annotations

import os

from omegaconf import OmegaConf


def cpus() -> int:
    """CPUs this job may use: SLURM's ``SLURM_CPUS_PER_TASK``, else the process's CPU affinity, else all."""
    slurm = os.environ.get("SLURM_CPUS_PER_TASK", "")
    if slurm.isdigit() and int(slurm) > 0:
        return int(slurm)
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def gpu_precision() -> str:
    """``bf16-mixed`` on a GPU that supports bfloat16 (Ampere and later), else ``16-mixed``."""
    import torch

    return "bf16-mixed" if torch.cuda.is_available() and torch.cuda.is_bf16_supported() else "16-mixed"


def register() -> None:
    """Register the resolvers once per process (the CLIs and the compose helper call it)."""
    if not OmegaConf.has_resolver("lab.cpus"):
        OmegaConf.register_new_resolver("lab.cpus", cpus)
    if not OmegaConf.has_resolver("lab.gpu_precision"):
        OmegaConf.register_new_resolver("lab.gpu_precision", gpu_precision)
