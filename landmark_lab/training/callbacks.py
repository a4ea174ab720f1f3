"""Lightning callbacks of landmark_lab's own."""

from __future__ import annotations

import math
from typing import Any

import lightning as L
import torch

from landmark_lab.errors import TrainingDiverged

_ADVICE = ("Lower the learning rate (schedule.lr / schedule.finetune_lr) or check the data, then re-run the same "
           "command with resume=true (it retries this run) or in a new folder.")


class DivergenceGuard(L.Callback):
    """Stop a stage at the first non-finite training loss or validation NME: a diverged run is never a result.

    It runs before the checkpoint callback (Lightning orders checkpointing last), so no NaN weights are saved.
    """

    def __init__(self, stage: str, monitor: str = "val/nme_io") -> None:
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
