"""Alias so that ``python -m landmark_lab.predict`` keeps working: the command is :mod:`landmark_lab.cli.predict`."""

from landmark_lab.cli.predict import main

if __name__ == "__main__":
    main()
