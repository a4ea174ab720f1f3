"""Samplers shard themselves across DDP ranks: disjoint shares, and every rank's batches keep the synthetic share."""

from __future__ import annotations

import numpy as np

from landmark_lab.datamodules.samplers import CyclingSampler, MixedBatchSampler


def test_cycling_sampler_ranks_get_disjoint_shares_of_one_stream():
    whole = list(CyclingSampler(50, 40, seed=3))
    shares = [list(CyclingSampler(50, 20, seed=3, rank=r, world=2)) for r in range(2)]
    assert len(shares[0]) == len(shares[1]) == 20
    assert sorted(shares[0] + shares[1]) == sorted(whole)
    assert shares[0] == whole[0::2] and shares[1] == whole[1::2]


def test_mixed_batches_keep_the_share_on_every_rank_and_are_disjoint():
    n_syn, n_real, bs, steps = 400, 300, 8, 10
    batches = [list(MixedBatchSampler(n_syn, n_real, bs, 0.75, steps, seed=1, rank=r, world=2)) for r in range(2)]
    for rank_batches in batches:
        assert len(rank_batches) == steps
        for b in rank_batches:
            assert len(b) == bs and sum(i < n_syn for i in b) == 6  # 75 % synthetic on each rank
    seen = [np.concatenate(rb) for rb in batches]
    assert not set(seen[0].tolist()) & set(seen[1].tolist())  # fewer draws than items: no overlap at all
