"""What every command-line entry point shares: user errors become one clear line and exit status 2."""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any, TypeVar

from landmark_lab.errors import LandmarkLabError

T = TypeVar("T")


def guarded(fn: Callable[..., T], *args: Any) -> T:
    """``fn(*args)``; a :class:`LandmarkLabError` (bad data or config) is printed as ``error: ...`` and exits 2."""
    try:
        return fn(*args)
    except LandmarkLabError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)
