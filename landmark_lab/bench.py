"""Alias so that ``python -m landmark_lab.bench`` keeps working: the command is :mod:`landmark_lab.cli.bench`."""

from landmark_lab.cli.bench import main

if __name__ == "__main__":
    main()
