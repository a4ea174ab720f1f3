"""Alias so that ``python -m landmark_lab.report`` keeps working: the command is :mod:`landmark_lab.cli.report`."""

from landmark_lab.cli.report import main

if __name__ == "__main__":
    main()
