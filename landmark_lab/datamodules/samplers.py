"""Step-based samplers: a training stage is a number of optimiser steps, whatever the pool size."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
from torch.utils.data import Sampler


class CyclingSampler(Sampler[int]):
    """``num_samples`` indices from back-to-back random permutations of ``range(n)`` (every item seen
    once per pass, unlike sampling with replacement)."""

    def __init__(self, n: int, num_samples: int, seed: int = 0) -> None:
        self.n, self.num_samples, self.seed = n, num_samples, seed
        self.epoch = 0

    def __len__(self) -> int:
        return self.num_samples

    def __iter__(self) -> Iterator[int]:
        rng = np.random.default_rng([self.seed, self.epoch])
        self.epoch += 1
        out: list[int] = []
        while len(out) < self.num_samples:
            out.extend(rng.permutation(self.n).tolist())
        return iter(out[: self.num_samples])


class MixedBatchSampler(Sampler[list[int]]):
    """Batches with a fixed synthetic share: ``round(share * batch)`` indices from ``[0, n_syn)`` and the
    rest from ``[n_syn, n_syn + n_real)`` (the study's alpha)."""

    def __init__(self, n_syn: int, n_real: int, batch_size: int, share: float, steps: int, seed: int = 0) -> None:
        if not 0.0 <= share <= 1.0:
            raise ValueError(f"synthetic share must be in [0, 1], got {share}")
        self.k_syn = int(round(share * batch_size))
        self.k_real = batch_size - self.k_syn
        self.syn = CyclingSampler(n_syn, self.k_syn * steps, seed)
        self.real = CyclingSampler(n_real, self.k_real * steps, seed + 1)
        self.n_syn, self.steps = n_syn, steps

    def __len__(self) -> int:
        return self.steps

    def __iter__(self) -> Iterator[list[int]]:
        syn, real = list(self.syn), [i + self.n_syn for i in self.real]
        for b in range(self.steps):
            yield syn[b * self.k_syn : (b + 1) * self.k_syn] + real[b * self.k_real : (b + 1) * self.k_real]
