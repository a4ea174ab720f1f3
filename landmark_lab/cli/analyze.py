"""``python -m landmark_lab.analyze crops|augment|labels|conventions|all [overrides] [out_dir=DIR]``.

Domain-gap figures and tables (:func:`landmark_lab.analysis.commands.run_analysis`).
"""

from landmark_lab.cli.app import run_app


def main() -> None:
    from landmark_lab.analysis.commands import run_analysis

    run_app("analyze", run_analysis, positional="command")


if __name__ == "__main__":
    main()
