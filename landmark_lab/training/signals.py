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

from lightning.pytorch.utilities.exceptions import SIGTERMException

from landmark_lab.errors import Interrupted

_in_fit = False


def _message(stage: str | None, step: int | None) -> str:
    where = f" in stage {stage}" + (f" after step {step}" if step is not None else "") if stage else ""
    return (f"interrupted by SIGTERM{where}. The run folder keeps its checkpoints and failed.json (reason "
            "'interrupted'); the same command with resume=true continues each stage from its last checkpoint.")


def _raise(signum: int, frame: Any) -> None:
    if _in_fit:  # Lightning's own handler flags it; its loop stops at the next step (fit_interrupted)
        return
    raise Interrupted(_message(None, None), signum)


@contextmanager
def sigterm_interrupts() -> Iterator[None]:
    """While the block runs, SIGTERM raises :class:`Interrupted` (main thread only; elsewhere nothing changes)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
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
        return fit()
    except SIGTERMException:
        raise Interrupted(_message(stage, step()), int(signal.SIGTERM), stage, step()) from None
    finally:
        _in_fit = False
