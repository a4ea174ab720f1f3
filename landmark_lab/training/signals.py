"""SIGTERM (what a cluster scheduler sends before preemption) ends a run as :class:`~landmark_lab.errors.Interrupted`.

Inside ``Trainer.fit`` Lightning already turns SIGTERM into ``SIGTERMException`` at the next step boundary (a
``SystemExit`` with status 0, which would look like success); :func:`fit_interrupted` converts that. Outside fit
(indexing data, testing) the handler installed by :func:`sigterm_interrupts` raises at once.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import lightning as L
from lightning.pytorch.utilities.exceptions import SIGTERMException

from landmark_lab.errors import Interrupted

_in_fit = False
_received = False  # a SIGTERM arrived during fit: SigtermStop ends the stage at the next batch


def _message(stage: str | None, step: int | None) -> str:
    where = f" in stage {stage}" + (f" after step {step}" if step is not None else "") if stage else ""
    return (f"interrupted by SIGTERM{where}. The run folder keeps its checkpoints and failed.json (reason "
            "'interrupted'); the same command with resume=true continues each stage from its last checkpoint.")


def _raise(signum: int, frame: Any) -> None:
    global _received
    _received = True
    if _in_fit:  # raising inside Lightning's loop could leave a checkpoint half-written: stop at a batch boundary
        return
    raise Interrupted(_message(None, None), signum)


class SigtermStop(L.Callback):
    """Ends fit at the next batch once SIGTERM was received. Lightning stops on SIGTERM too, but registers its
    handler only after setup and checkpoint restore: a signal before that reached only :func:`_raise`."""

    def on_train_batch_end(self, trainer: L.Trainer, *args: Any) -> None:
        if _received:
            raise SIGTERMException()


@contextmanager
def sigterm_interrupts() -> Iterator[None]:
    """While the block runs, SIGTERM raises :class:`Interrupted` (main thread only; elsewhere nothing changes)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    global _received
    _received = False
    previous = signal.signal(signal.SIGTERM, _raise)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def fit_interrupted(fit: Callable[[], Any], stage: str, step: Callable[[], int]) -> Any:
    """``fit()``; Lightning's SIGTERM stop becomes :class:`Interrupted` naming the stage and its last step."""
    global _in_fit
    _in_fit = True
    try:
        result = fit()
    except SIGTERMException:
        raise Interrupted(_message(stage, step()), int(signal.SIGTERM), stage, step()) from None
    finally:
        _in_fit = False
    if _received:  # it came after the last batch: the stage is complete, the run still stops as asked
        raise Interrupted(_message(stage, step()), int(signal.SIGTERM), stage, step())
    return result
