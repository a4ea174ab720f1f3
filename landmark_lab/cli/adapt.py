"""Fit a label adapter to a trained model: ``python -m landmark_lab.adapt ckpt_path=... [data=...]``.

The checkpoint's base (synthetic-convention) predictions on the real budget are mapped onto their
real labels (see :mod:`landmark_lab.adaptation.posthoc`); the model with the adapter is saved as
``adapted.ckpt`` in the run folder and tested on the real test split with and without it.
"""

from __future__ import annotations

import time

from omegaconf import DictConfig, OmegaConf, open_dict

from landmark_lab.adaptation.posthoc import fit_posthoc_adapter
from landmark_lab.cli.app import run_app
from landmark_lab.cli.checks import check_eval_config
from landmark_lab.datamodules.strategies import StageData, StrategyDataModule
from landmark_lab.evaluation.core import NME_CONVENTION, evaluate, summary_line
from landmark_lab.evaluation.figures import evaluation_figures
from landmark_lab.models.checkpoint import load_checkpoint, save_model
from landmark_lab.utils.run import run_dir_of, start_run_dir, write_json


def adapt_checkpoint(cfg: DictConfig) -> dict:
    """Fit, save and test; returns what ``metrics.json`` holds."""
    t0 = time.perf_counter()
    check_eval_config(cfg, adapt=True)
    model = load_checkpoint(cfg.ckpt_path)  # read (pickle-free) and checked before the run folder is touched
    run_dir = run_dir_of(cfg)
    start_run_dir(run_dir, cfg, overwrite=bool(cfg.get("overwrite", False)))
    data = OmegaConf.create(OmegaConf.to_container(cfg.data, resolve=True))
    if model.hparams.crop:  # crop as the model was trained
        with open_dict(data):
            data.transform.crop = dict(model.hparams.crop)
    dm = StrategyDataModule(data, seed=int(cfg.seed), stages=[StageData("train", "real")], strategy="real_only")
    dm.prepare_data()
    dm.setup("fit")
    p = cfg.posthoc_adapter
    info = fit_posthoc_adapter(model, dm.real_train_eval_dataloader(), dm.real_val_dataloader(), name=str(p.name),
                               steps=int(p.steps), lr=float(p.lr), weight_decay=float(p.weight_decay), seed=int(cfg.seed))
    path = save_model(model, run_dir / "adapted.ckpt")
    result = evaluate(model, dm.test_dataloader())
    payload = {"checkpoint": str(cfg.ckpt_path), "adapted_checkpoint": path.name, "posthoc_adapter": info,
               "data": dm.summary(), "test": result.as_json(), "nme_convention": NME_CONVENTION,
               "timing": {"total_seconds": round(time.perf_counter() - t0, 1)},
               "config": OmegaConf.to_container(cfg, resolve=True)}
    write_json(run_dir / "metrics.json", payload)
    evaluation_figures(result, run_dir, f"with the post-hoc {info['adapter']} adapter")
    print(f"\n[landmark_lab] adapter fitted on {info['fitted_on']} real images | real test: "
          f"{summary_line(result.metrics, result.without_adapter)}\n[landmark_lab] model with adapter: {path}")
    return payload


def main() -> None:
    run_app("adapt", adapt_checkpoint)


if __name__ == "__main__":
    main()
