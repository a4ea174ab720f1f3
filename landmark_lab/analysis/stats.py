"""Distances between two samples of a quantity, to put a number on a domain gap."""

from __future__ import annotations

import numpy as np
from scipy.stats import ks_2samp


def ks_distance(a: np.ndarray, b: np.ndarray) -> float:
    """Two-sample Kolmogorov-Smirnov statistic: the largest gap between the two empirical CDFs (0 = same, 1 = disjoint)."""
    return float(ks_2samp(np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)).statistic)
