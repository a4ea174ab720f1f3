"""``python -m landmark_lab.adapt ckpt_path=... [data=...] [data.real_budget=50]``: a post-hoc label adapter.

Fits the adapter on the real budget, saves ``adapted.ckpt`` and tests with and without it
(:func:`landmark_lab.adaptation.fit_checkpoint.adapt_checkpoint`).
"""

from landmark_lab.cli.app import run_app


def main() -> None:
    from landmark_lab.adaptation.fit_checkpoint import adapt_checkpoint

    run_app("adapt", adapt_checkpoint)


if __name__ == "__main__":
    main()
