"""Alias so that ``python -m landmark_lab.train`` keeps working: the command is :mod:`landmark_lab.cli.train`."""

from landmark_lab.cli.train import main

if __name__ == "__main__":
    main()
