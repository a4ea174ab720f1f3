import pytest

from landmark_lab.datamodules.samplers import CyclingSampler, MixedBatchSampler
from landmark_lab.datamodules.splits import budget_items, groups_of, holdout
from landmark_lab.errors import ConfigError


def test_budgets_are_exact_nested_and_deterministic():
    groups = groups_of([30, 20])
    for flip in (False, True):
        small, big = budget_items(groups, 10, flip, seed=3), budget_items(groups, 25, flip, seed=3)
        assert len(small) == 10 and len(big) == 25
        assert big[:10] == small
        assert budget_items(groups, 10, flip, seed=3) == small
        assert budget_items(groups, 10, flip, seed=4) != small
    assert len(budget_items(groups, "all", True, 0)) == 100


def test_budget_larger_than_pool_is_clear():
    with pytest.raises(ConfigError, match=r"real_budget=61 is larger than the real training pool of 60"):
        budget_items(groups_of([30]), 61, True, 0)
    with pytest.raises(ConfigError, match="not a whole number"):
        budget_items(groups_of([30]), "fifty", False, 0)


def test_validation_holdout_has_no_leakage_with_flips():
    groups = groups_of([40, 10])
    train, val = holdout(groups, 8, seed=0)
    assert len(val) == 8 and not set(train) & set(val) and sorted(train + val) == groups
    items = budget_items(train, "all", True, 0)
    assert {(i.source, i.index) for i in items}.isdisjoint(set(val))


def test_samplers_cover_and_mix():
    s = list(CyclingSampler(7, 21, seed=0))
    assert sorted(s) == sorted(list(range(7)) * 3)
    batches = list(MixedBatchSampler(10, 5, batch_size=8, share=0.25, steps=4))
    assert len(batches) == 4
    for b in batches:
        assert sum(i < 10 for i in b) == 2 and sum(i >= 10 for i in b) == 6


def test_budget_cap_uses_whole_pool_and_warns():
    with pytest.warns(UserWarning, match="capped at the real training pool of 30"):
        items = budget_items(groups_of([30]), 100, False, 0, cap=True)
    assert len(items) == 30
