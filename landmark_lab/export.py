"""Alias so that ``python -m landmark_lab.export`` keeps working: the command is :mod:`landmark_lab.cli.export`."""

from landmark_lab.cli.export import main

if __name__ == "__main__":
    main()
