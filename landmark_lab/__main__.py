"""``landmark-lab COMMAND [ARGS]`` / ``python -m landmark_lab COMMAND [ARGS]``: every command in one place."""

from __future__ import annotations

import importlib
import sys

from landmark_lab.cli import COMMANDS


def main() -> None:
    """Dispatch to ``landmark_lab.cli.<COMMAND>.main`` with the remaining arguments."""
    if len(sys.argv) < 2 or sys.argv[1] not in COMMANDS:
        width = max(map(len, COMMANDS))
        print("usage: landmark-lab COMMAND [ARGS]   (each command: landmark-lab COMMAND --help)\n\ncommands:")
        for name, what in COMMANDS.items():
            print(f"  {name:<{width}}  {what}")
        sys.exit(0 if len(sys.argv) > 1 and sys.argv[1] in ("-h", "--help") else 2)
    command = sys.argv.pop(1)
    sys.argv[0] = f"landmark-lab {command}"
    importlib.import_module(f"landmark_lab.cli.{command}").main()


if __name__ == "__main__":
    main()
