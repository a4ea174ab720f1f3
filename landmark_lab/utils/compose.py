"""The one way to compose a config outside a command line (bench, tests, notebooks), exactly as the CLI does."""

from __future__ import annotations

import tempfile
from collections.abc import Sequence
from pathlib import Path

from omegaconf import DictConfig, OmegaConf, open_dict

from landmark_lab.errors import ConfigError


def config_dir() -> Path:
    """The folder of the packaged configs: ``landmark_lab/conf`` in an installed wheel, else the source tree's ``conf/``.

    The package's own copy comes first: next to an installed package, ``parents[2]`` is site-packages, where an
    unrelated ``conf/`` may lie.
    """
    package = Path(__file__).resolve().parents[1]
    for candidate in (package / "conf", package.parent / "conf"):
        if (candidate / "train.yaml").is_file():
            return candidate
    raise ConfigError(f"landmark_lab's configs are missing: neither {package / 'conf'} (an installed wheel) nor "
                      f"{package.parent / 'conf'} (a source checkout) holds train.yaml. Reinstall the package "
                      "(pip install landmark_lab, or pip install -e . in the source tree).")


def compose_config(name: str = "train", overrides: Sequence[str] = (), run_dir: str | Path | None = None,
                   root_dir: str | Path | None = None) -> DictConfig:
    """``conf/<name>.yaml`` with ``overrides``, its run folder at ``run_dir`` (a new temp folder if None).

    Like inside a Hydra app, the result has no ``hydra`` node and ``HydraConfig`` is set (so run-folder
    helpers and ``${hydra:...}`` interpolations work). A bad override is a :class:`ConfigError`.
    """
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from hydra.core.hydra_config import HydraConfig
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    from landmark_lab.utils.keys import check_override_keys, check_renamed
    from landmark_lab.utils.resolvers import register

    register()
    run_dir = Path(run_dir) if run_dir is not None else Path(tempfile.mkdtemp(prefix=f"landmark_lab_{name}_"))
    GlobalHydra.instance().clear()
    check_renamed(overrides)
    try:
        with initialize_config_dir(config_dir=str(config_dir()), version_base="1.3"):
            cfg = compose(config_name=name, overrides=[*overrides, f"hydra.run.dir={run_dir}"], return_hydra_config=True)
            check_override_keys(cfg, name, overrides)  # as the CLI does: no forced key that changes nothing
    except (HydraException, OmegaConfBaseException) as exc:
        raise ConfigError(f"bad override: {exc}") from None
    # compose() leaves runtime.output_dir unset (no run starts); set it, so that run_dir_of and
    # ${hydra:runtime.output_dir} name this run folder, as they do inside a Hydra app
    cfg.hydra.runtime.output_dir = str(run_dir)
    HydraConfig().set_config(cfg)
    with open_dict(cfg):
        if root_dir is not None:
            cfg.paths.root_dir = str(root_dir)
        cfg.paths.output_dir = str(run_dir)
        del cfg["hydra"]
    return cfg


def complete_stages(cfg: DictConfig) -> DictConfig:
    """``cfg`` with each of its strategy's stages completed by ``stage_defaults`` (conf/train.yaml) under what the
    stage sets itself, in place; idempotent. A config without ``stage_defaults`` (a record of an older version,
    whose stages listed every key) is returned as it is."""
    defaults, stages = cfg.get("stage_defaults"), OmegaConf.select(cfg, "strategy.stages")
    if defaults is None or stages is None:
        return cfg
    # merged unresolved, so a stage's ${schedule...} values resolve against this config as the user's overrides set them
    with open_dict(cfg):
        cfg.strategy.stages = [OmegaConf.merge(defaults, st) for st in stages]
    return cfg
