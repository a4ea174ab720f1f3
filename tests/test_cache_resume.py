"""Pre-training cache (miss, hit, corrupt entry) and resuming killed runs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from landmark_lab.cli.train import train
from landmark_lab.errors import ConfigError

pytestmark = pytest.mark.slow

FAST = ["+experiment=synth_pretrain_ft50", "strategy.stages.0.steps=12", "strategy.stages.1.steps=6",
        "schedule.val_every=6"]


def _metrics(cfg) -> dict:
    return json.loads((Path(cfg.paths.output_dir) / "metrics.json").read_text())


def test_pretraining_is_cached_across_budgets_and_corrupt_entries_retrain(make_cfg, tmp_path):
    cache = tmp_path / "pretrain_cache"
    first = make_cfg([*FAST, "data.real_budget=16", f"pretrain_cache.dir={cache}"], run_dir=tmp_path / "a")
    train(first)
    pre = _metrics(first)["stages"][0]
    assert pre["cache_hit"] is False and pre["steps"] == 12
    entries = list(cache.glob("*.pt"))
    assert len(entries) == 1 and not list(cache.glob("*.tmp*"))

    second = make_cfg([*FAST, "data.real_budget=32", f"pretrain_cache.dir={cache}"], run_dir=tmp_path / "b")
    train(second)
    out = _metrics(second)
    assert out["stages"][0]["cache_hit"] is True and out["data"]["real_train"] == 32
    # a cache hit gives the same pre-trained weights: same synthetic validation score
    assert out["stages"][0]["best_val_nme_io"] == pytest.approx(pre["best_val_nme_io"])

    entries[0].write_bytes(b"truncated")
    third = make_cfg([*FAST, "data.real_budget=16", f"pretrain_cache.dir={cache}"], run_dir=tmp_path / "c")
    train(third)
    assert _metrics(third)["stages"][0]["cache_hit"] is False
    assert (cache / (entries[0].name + ".corrupt")).is_file() and entries[0].is_file()


def test_killed_run_resumes_and_finished_run_is_skipped(make_cfg, tmp_path):
    run = tmp_path / "run"
    overrides = [*FAST, "data.real_budget=16", "pretrain_cache.enabled=false", "resume=true"]
    cfg = make_cfg(overrides, run_dir=run)
    train(cfg)
    full = _metrics(cfg)
    # Simulate a kill during fine-tuning: the stage is not marked done and no results were written.
    (run / "metrics.json").unlink()
    (run / "checkpoints" / "finetune" / "done.json").unlink()
    assert (run / "checkpoints" / "finetune" / "last.ckpt").is_file()
    with pytest.raises(ConfigError, match=r"unfinished run\. Pass resume=true"):
        train(make_cfg([*FAST, "data.real_budget=16", "pretrain_cache.enabled=false"], run_dir=run))
    train(make_cfg(overrides, run_dir=run))
    resumed = _metrics(cfg)
    assert resumed["stages"][0]["reused"] is True  # pre-training not recomputed
    assert resumed["stages"][1]["steps"] == 6  # fine-tuning continued to its end, not restarted past it
    assert resumed["test"]["metrics"]["nme_io"] == pytest.approx(full["test"]["metrics"]["nme_io"], rel=0.2)
    # A finished run is recognised and skipped: its results are not touched.
    mtime = (run / "metrics.json").stat().st_mtime_ns
    assert train(make_cfg(overrides, run_dir=run)) == resumed["val_nme_io"]
    assert (run / "metrics.json").stat().st_mtime_ns == mtime
    # ... also from another checkout or with other loader settings (they do not change the result) ...
    assert train(make_cfg([*overrides, "data.num_workers=2"], run_dir=run)) == resumed["val_nme_io"]
    # ... but not as a run of other settings: its old figures would be reported under the new ones' name.
    with pytest.raises(ConfigError, match=r"other settings \(data\.real_budget: 16 -> 32\).*own folder"):
        train(make_cfg([*FAST, "data.real_budget=32", "pretrain_cache.enabled=false", "resume=true"], run_dir=run))
    assert (run / "metrics.json").stat().st_mtime_ns == mtime


def test_unfinished_run_continues_only_with_the_settings_it_started_with(make_cfg, tmp_path):
    from omegaconf import OmegaConf

    run = tmp_path / "run"
    overrides = [*FAST, "data.real_budget=16", "pretrain_cache.enabled=false", "resume=true"]
    first = make_cfg(overrides, run_dir=run)
    train(first)
    # Killed during fine-tuning; .hydra/config.yaml records the config the run started with.
    (run / "metrics.json").unlink()
    (run / "checkpoints" / "finetune" / "done.json").unlink()
    assert (run / ".hydra" / "config.yaml").read_text() == OmegaConf.to_yaml(first)
    last = run / "checkpoints" / "finetune" / "last.ckpt"
    before = last.read_bytes()
    with pytest.raises(ConfigError, match=r"unfinished run trained with other settings \(data\.real_budget: 16 -> 32\)"
                                          r".*checkpoints are left as they are"):
        train(make_cfg([*FAST, "data.real_budget=32", "pretrain_cache.enabled=false", "resume=true"], run_dir=run))
    assert last.read_bytes() == before and not (run / "metrics.json").exists()
    # a damaged record is named, and the run is left alone
    (run / ".hydra" / "config.yaml").write_text("data: [unclosed\n")
    with pytest.raises(ConfigError, match=r"config\.yaml: unreadable.*resume=false overwrite=true"):
        train(make_cfg(overrides, run_dir=run))
    assert last.read_bytes() == before
    # with its own settings (loader settings may differ) it continues to the end
    (run / ".hydra" / "config.yaml").write_text(OmegaConf.to_yaml(first))
    train(make_cfg([*overrides, "data.num_workers=2"], run_dir=run))
    assert _metrics(first)["stages"][1]["steps"] == 6


def test_same_seed_same_metrics(make_cfg, tmp_path):
    runs = []
    for name in ("a", "b"):
        cfg = make_cfg(["+experiment=real_only", "strategy.stages.0.steps=8", "schedule.val_every=4",
                        "data.num_workers=1"], run_dir=tmp_path / name)
        train(cfg)
        runs.append(_metrics(cfg)["test"]["metrics"])
    assert runs[0] == runs[1]


def test_run_folder_behind_a_symbolic_link_finishes_and_resumes(make_cfg, tmp_path):
    # logs/ on a scratch disk through a link: Lightning names checkpoints by their real path, the run by the link
    real = tmp_path / "scratch"
    real.mkdir()
    (tmp_path / "logs").symlink_to(real, target_is_directory=True)
    run = tmp_path / "logs" / "run"
    cfg = make_cfg([*FAST, "data.real_budget=16", f"pretrain_cache.dir={tmp_path / 'cache'}", "resume=true"], run_dir=run)
    train(cfg)
    stages = _metrics(cfg)["stages"]
    assert [s["best_checkpoint"] for s in stages] == ["checkpoints/pretrain/best.ckpt", "checkpoints/finetune/best.ckpt"]
    assert (real / "run" / "metrics.json").is_file()
    (real / "run" / "metrics.json").unlink()  # killed before its results: the re-run reuses both finished stages
    train(make_cfg([*FAST, "data.real_budget=16", f"pretrain_cache.dir={tmp_path / 'cache'}", "resume=true"], run_dir=run))
    assert all(s.get("reused") for s in _metrics(cfg)["stages"])


def test_a_cache_entry_from_another_setup_or_with_other_weights_is_a_miss(tmp_path):
    import torch

    from landmark_lab.training.pretrain_cache import PretrainCache

    cache = PretrainCache(tmp_path)
    model = torch.nn.Linear(3, 2)
    path = cache.save("k", model.state_dict(), {"best_val_nme_io": 0.05}, {"seed": 0})
    assert cache.load("k", model, {"seed": 0}) is not None
    # the same entry read by a run with other key material (copied from another setup): a miss, moved aside
    assert cache.load("k", model, {"seed": 1}) is None and path.with_name("k.pt.corrupt").is_file()
    # forged weights under a valid entry's material: the checksum no longer matches
    cache.save("k", model.state_dict(), {"best_val_nme_io": 0.05}, {"seed": 0})
    entry = torch.load(path, weights_only=True)
    entry["state_dict"]["weight"] += 1.0
    entry["info"]["best_val_nme_io"] = 0.001
    torch.save(entry, path)
    assert cache.load("k", model, {"seed": 0}) is None


def test_a_stage_record_without_its_checkpoint_is_retrained(make_cfg, tmp_path, caplog):
    cfg = make_cfg(["+experiment=real_only", "strategy.stages.0.steps=4", "schedule.val_every=2", "resume=true"])
    train(cfg)
    run = Path(cfg.paths.output_dir)
    done = run / "checkpoints" / "train" / "done.json"
    record = json.loads(done.read_text())
    for forged in ({**record, "best_checkpoint": None, "best_val_nme_io": 0.0001},
                   {**record, "best_checkpoint": "checkpoints/train/gone.ckpt", "best_val_nme_io": 0.0001}):
        (run / "metrics.json").unlink()
        done.write_text(json.dumps(forged))
        with caplog.at_level("WARNING"):
            train(cfg)
        assert "the stage is trained again" in caplog.text
        m = json.loads((run / "metrics.json").read_text())
        assert "reused" not in m["stages"][0] and m["val_nme_io"] != 0.0001
        caplog.clear()
