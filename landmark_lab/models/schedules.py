"""Per-step learning-rate schedules, built from ``conf/scheduler/`` by ``hydra.utils.instantiate``."""

from __future__ import annotations

import math

import torch


def _cosine(step: int, total: int, warmup: int, floor: float) -> float:
    if step < warmup:
        return (step + 1) / max(1, warmup)
    t = min(1.0, (step - warmup) / max(1, total - warmup))
    return floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * t))


def warmup_cosine(optimizer: torch.optim.Optimizer, total_steps: int, warmup_frac: float = 0.05,
                  min_lr_ratio: float = 0.01) -> torch.optim.lr_scheduler.LambdaLR:
    """Linear warm-up over ``warmup_frac`` of ``total_steps``, then cosine decay to ``min_lr_ratio`` x lr."""
    warmup = int(warmup_frac * total_steps)
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: _cosine(step, total_steps, warmup, min_lr_ratio))


def constant(optimizer: torch.optim.Optimizer, total_steps: int) -> torch.optim.lr_scheduler.LambdaLR:
    """The stage's learning rate throughout."""
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0)
