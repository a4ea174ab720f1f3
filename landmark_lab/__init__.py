"""landmark_lab: how much real, hand-labelled data can synthetic faces replace?

``from landmark_lab import Predictor`` gives the inference API (see :mod:`landmark_lab.inference`).
"""

from __future__ import annotations

from typing import Any

__all__ = ["FacePrediction", "Predictor"]


def __getattr__(name: str) -> Any:
    # Lazy: importing the package for its CLIs or configs must not pull in torch and OpenCV.
    if name in __all__:
        from landmark_lab.inference import predictor

        return getattr(predictor, name)
    raise AttributeError(f"module 'landmark_lab' has no attribute {name!r}")
