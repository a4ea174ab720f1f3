"""Alias so that ``python -m landmark_lab.analyze`` keeps working: the command is :mod:`landmark_lab.cli.analyze`."""

from landmark_lab.cli.analyze import main

if __name__ == "__main__":
    main()
