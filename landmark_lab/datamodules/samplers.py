"""Step-based samplers: a training stage is a number of optimiser steps, whatever the pool size.

Under DDP every rank builds the same global stream from the same seed and takes its own share
(``rank::world``), so ranks see disjoint samples and Lightning needs to inject no sampler
(the Trainer runs with ``use_distributed_sampler=False``)."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
from torch.utils.data import Sampler


class CyclingSampler(Sampler[int]):
    """``num_samples`` indices (per rank) from back-to-back random permutations of ``range(n)`` (every item
    seen once per pass, unlike sampling with replacement); rank ``rank`` of ``world`` takes every
    ``world``-th index of the shared stream, starting at its rank."""

    def __init__(self, n: int, num_samples: int, seed: int = 0, rank: int = 0, world: int = 1) -> None:
        if not 0 <= rank < world:
            raise ValueError(f"rank {rank} is not in a world of {world}")
        self.n, self.num_samples, self.seed, self.rank, self.world = n, num_samples, seed, rank, world
        self.epoch = 0

    def __len__(self) -> int:
        return self.num_samples

    def __iter__(self) -> Iterator[int]:
        rng = np.random.default_rng([self.seed, self.epoch])
        self.epoch += 1
        total = self.num_samples * self.world
        out: list[int] = []
        while len(out) < total:
            out.extend(rng.permutation(self.n).tolist())
        return iter(out[:total][self.rank :: self.world])


class MixedBatchSampler(Sampler[list[int]]):
    """Batches with a fixed synthetic share: ``round(share * batch)`` indices from ``[0, n_syn)`` and the
    rest from ``[n_syn, n_syn + n_real)`` (the study's alpha)."""

    def __init__(self, n_syn: int, n_real: int, batch_size: int, share: float, steps: int, seed: int = 0,
                 rank: int = 0, world: int = 1) -> None:
        if not 0.0 <= share <= 1.0:
            raise ValueError(f"synthetic share must be in [0, 1], got {share}")
        self.k_syn = int(round(share * batch_size))
        self.k_real = batch_size - self.k_syn
        # Each rank's batches keep the synthetic share; the two streams are sharded like CyclingSampler's.
        self.syn = CyclingSampler(n_syn, self.k_syn * steps, seed, rank, world)
        self.real = CyclingSampler(n_real, self.k_real * steps, seed + 1, rank, world)
        self.n_syn, self.steps = n_syn, steps

    def __len__(self) -> int:
        return self.steps

    def __iter__(self) -> Iterator[list[int]]:
        syn, real = list(self.syn), [i + self.n_syn for i in self.real]
        for b in range(self.steps):
            yield syn[b * self.k_syn : (b + 1) * self.k_syn] + real[b * self.k_real : (b + 1) * self.k_real]
