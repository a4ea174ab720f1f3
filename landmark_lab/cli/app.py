"""What every command shares: one Hydra app per command over ``conf/<command>.yaml``, user errors as one line
with exit status 2, and the older flag spellings (``report SWEEP --runs``) translated to Hydra overrides."""

from __future__ import annotations

import sys
import warnings
from collections.abc import Callable
from typing import Any

import hydra
from omegaconf import DictConfig

from landmark_lab.utils.cli import guarded, hydra_entry
from landmark_lab.utils.compose import config_dir
from landmark_lab.utils.keys import check_override_keys, check_renamed


def run_app(config_name: str, task: Callable[[DictConfig], Any], flags: dict[str, str] | None = None,
            positional: str | None = None) -> None:
    """Run ``task(cfg)`` as a Hydra app over ``conf/<config_name>.yaml``.

    ``flags`` maps ``--flag`` spellings to config keys (``--runs`` -> ``runs=true``, ``--out D`` -> ``out=D``);
    ``positional`` is the key a leading bare argument sets (``report SWEEP`` -> ``sweep=SWEEP``).
    """
    from landmark_lab.utils.resolvers import register

    register()
    conf = guarded(config_dir)  # a broken install is one line too, not a traceback
    sys.argv[1:] = translate(sys.argv[1:], flags or {}, positional)
    warnings.filterwarnings("ignore", ".*does not have many workers.*")
    warnings.filterwarnings("ignore", ".*GPU available but not used.*")

    guarded(check_renamed, sys.argv[1:])  # before Hydra's own "not in struct" message, which names no new key

    def checked(cfg: DictConfig) -> Any:
        from hydra.core.hydra_config import HydraConfig

        hc = HydraConfig.get()
        check_override_keys(cfg, str(hc.job.config_name), list(hc.overrides.task))
        return task(cfg)

    @hydra.main(version_base="1.3", config_path=str(conf), config_name=config_name)
    def _main(cfg: DictConfig) -> Any:
        return guarded(checked, cfg)

    hydra_entry(_main)


def translate(argv: list[str], flags: dict[str, str], positional: str | None) -> list[str]:
    """Older argparse-style arguments as Hydra overrides; Hydra's own arguments pass through."""
    out: list[str] = []
    _items: dict[str, list[str]] = {}
    i = 0
    while i < len(argv):
        arg = argv[i]
        name, eq, value = arg.partition("=")
        if name in flags:
            key = flags[name]
            if key.endswith("+="):  # a list option that may repeat: collected into one override
                items = [*_items.get(key, []), value if eq else (argv[i + 1] if i + 1 < len(argv) else "")]
                _items[key] = items
                i += 1 if eq else 2
                continue
            if key.endswith("=true"):  # a switch
                out.append(key)
            elif eq:
                out.append(f"{key}={value}")
            elif i + 1 < len(argv):
                out.append(f"{key}={argv[i + 1]}")
                i += 1
        elif positional and i == 0 and "=" not in arg and not arg.startswith(("-", "+", "~")):
            out.append(f"{positional}={arg}")
        else:
            out.append(arg)
        i += 1
    out += [f"{key[:-2]}=[{','.join(items)}]" for key, items in _items.items()]
    return out
