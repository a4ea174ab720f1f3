"""``python -m landmark_lab.train [+experiment=NAME] [GROUP=OPTION] [KEY=VALUE]``: train and test a model.

Runs every stage of the strategy, keeps the best checkpoint of each, tests on the real test split and writes
``metrics.json`` in the run folder (:func:`landmark_lab.training.runner.train`). ``--help`` lists the groups.
"""

from landmark_lab.cli.app import run_app


def main() -> None:
    from landmark_lab.training.runner import train

    run_app("train", train)


if __name__ == "__main__":
    main()
