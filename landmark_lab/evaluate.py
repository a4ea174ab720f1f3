"""Alias so that ``python -m landmark_lab.evaluate`` keeps working: the command is :mod:`landmark_lab.cli.evaluate`."""

from landmark_lab.cli.evaluate import main

if __name__ == "__main__":
    main()
