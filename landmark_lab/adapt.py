"""Alias so that ``python -m landmark_lab.adapt`` keeps working: the command is :mod:`landmark_lab.cli.adapt`."""

from landmark_lab.cli.adapt import main

if __name__ == "__main__":
    main()
