"""``python -m landmark_lab.analyze crops|augment|labels|conventions|all|pseudo [overrides] [out_dir=DIR]``.

Domain-gap figures and tables (the analyses: :mod:`landmark_lab.analysis.commands`); ``pseudo run_dir=RUN`` grades a
self-training run's pseudo-labels.
"""

from __future__ import annotations

from pathlib import Path

from omegaconf import DictConfig

from landmark_lab.analysis.commands import ANALYSES, OF_A_RUN
from landmark_lab.cli.app import run_app


def run_analysis(cfg: DictConfig) -> Path:
    """``analyze``: run ``cfg.command`` (one analysis, or ``all``) into ``cfg.out_dir``; returns that folder."""
    command = str(cfg.command)
    names = [n for n in ANALYSES if n not in OF_A_RUN] if command == "all" else [command]
    fns = [ANALYSES.get(n) for n in names]  # an unknown name is a ConfigError listing the valid ones
    out = Path(str(cfg.out_dir))
    out.mkdir(parents=True, exist_ok=True)
    for fn in fns:
        fn(cfg, out)
    print(f"[landmark_lab] analysis written to {out.resolve()}")
    return out


def main() -> None:
    run_app("analyze", run_analysis, positional="command")


if __name__ == "__main__":
    main()
