"""Lightning callbacks of landmark_lab's own."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import lightning as L
import torch

from landmark_lab.errors import TrainingDiverged

_ADVICE = ("Lower the learning rate (schedule.lr / schedule.finetune_lr) or check the data, then re-run the same "
           "command with resume=true (it retries this run) or in a new folder.")


class StageAware:
    """Mixin for a callback that needs the stage it runs in: the training script builds each callback from its
    config, then calls :meth:`bind_stage` with the stage's name and folder (``RUN/checkpoints/<stage>``)."""

    stage: str = ""
    stage_dir: Path | None = None

    def bind_stage(self, stage: str, stage_dir: Path) -> None:
        self.stage, self.stage_dir = stage, Path(stage_dir)


class DivergenceGuard(StageAware, L.Callback):
    """Stop a stage at the first non-finite training loss or validation NME: a diverged run is never a result.

    It runs before the checkpoint callback (Lightning orders checkpointing last), so no NaN weights are saved.
    """

    def __init__(self, stage: str = "", monitor: str = "val/nme_io") -> None:
        self.stage, self.monitor = stage, monitor

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any,
                           batch_idx: int) -> None:
        loss = outputs.get("loss") if isinstance(outputs, dict) else outputs
        if torch.is_tensor(loss) and not bool(torch.isfinite(loss.detach()).all()):
            raise TrainingDiverged(f"stage {self.stage} diverged at step {trainer.global_step}: the training loss is "
                                   f"{float(loss)}. {_ADVICE}", stage=self.stage)

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.sanity_checking:
            return
        value = trainer.callback_metrics.get(self.monitor)
        if value is not None and not math.isfinite(float(value)):
            raise TrainingDiverged(f"stage {self.stage} diverged at step {trainer.global_step}: validation "
                                   f"{self.monitor} is {float(value)}. {_ADVICE}", stage=self.stage)


class StepRecorder(L.Callback):
    """Write the stage's final optimiser step to ``path`` (rank 0): under ddp_spawn the main process's trainer
    does not see the workers' step count, and ``last.ckpt`` is only rewritten when a checkpoint is saved."""

    def __init__(self, path: str) -> None:
        self.path = path

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.is_global_zero:
            from pathlib import Path

            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
            Path(self.path).write_text(str(int(trainer.global_step)))


class EMA(L.Callback):
    """Exponential moving average of the weights (Polyak averaging), validated, checkpointed and kept.

    After every optimiser step the average moves towards the live weights by ``1 - decay`` (with a warm-up,
    ``min(decay, (1 + t) / (10 + t))``, so early averages are not dominated by the random start). Validation
    runs on the averaged weights, so the best checkpoint *is* the EMA model and the stage ends with it; the live
    weights are put back before the next training step. The callback's state (the average and, while swapped,
    the live weights) is saved in every checkpoint, so ``resume=true`` continues both.
    """

    def __init__(self, decay: float = 0.998) -> None:
        if not 0.0 <= decay < 1.0:
            raise ValueError(f"EMA decay must be in [0, 1), got {decay}")
        self.decay = float(decay)
        self.average: dict[str, torch.Tensor] | None = None
        self.live: dict[str, torch.Tensor] | None = None  # the training weights while the average is swapped in
        self.updates = 0

    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self.live is not None:  # resumed while swapped: the checkpoint's weights are the average
            pl_module.load_state_dict(self.live)
            self.live = None
        if self.average is None:
            self.average = {k: v.detach().clone() for k, v in pl_module.state_dict().items()}
        else:
            device = next(pl_module.parameters()).device
            self.average = {k: v.to(device) for k, v in self.average.items()}

    @torch.no_grad()
    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any,
                           batch_idx: int) -> None:
        self.updates += 1
        decay = min(self.decay, (1.0 + self.updates) / (10.0 + self.updates))
        for k, v in pl_module.state_dict().items():
            avg = self.average[k]
            if avg.is_floating_point():
                avg.lerp_(v.detach(), 1.0 - decay)
            else:  # counters such as BatchNorm's num_batches_tracked
                avg.copy_(v)

    def _swap_in(self, pl_module: L.LightningModule) -> None:
        if self.average is not None and self.live is None:
            self.live = {k: v.detach().clone() for k, v in pl_module.state_dict().items()}
            pl_module.load_state_dict(self.average)

    def _swap_out(self, pl_module: L.LightningModule) -> None:
        if self.live is not None:
            pl_module.load_state_dict(self.live)
            self.live = None

    def on_validation_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.training or trainer.state.fn == "fit":
            self._swap_in(pl_module)

    def on_train_batch_start(self, trainer: L.Trainer, pl_module: L.LightningModule, batch: Any, batch_idx: int) -> None:
        self._swap_out(pl_module)

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        # The stage ends with the averaged weights (the runner then loads the best checkpoint, also an average).
        self._swap_in(pl_module)
        self.live = None

    def state_dict(self) -> dict[str, Any]:
        return {"decay": self.decay, "updates": self.updates, "average": self.average, "live": self.live}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.updates = int(state.get("updates", 0))
        self.average = state.get("average")
        self.live = state.get("live")
