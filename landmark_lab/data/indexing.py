"""One way every reader indexes its files: parse each entry once, fail clearly or skip and count."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from typing import TypeVar

from landmark_lab.errors import DataError

log = logging.getLogger("landmark_lab.data")

E = TypeVar("E")
R = TypeVar("R")


def index_entries(entries: Iterable[E], parse: Callable[[E], R], name: str, skip_bad: bool = False,
                  limit: int | None = None) -> tuple[list[E], list[R], list[str]]:
    """``(kept entries, their parsed labels, skip messages)``.

    A :class:`DataError` from ``parse`` stops indexing (its message names the file) unless
    ``skip_bad``; then the entry is left out, counted, and one warning says how many were skipped.
    ``limit`` stops after that many good entries (e.g. 10k of Face Synthetics' 100k).
    """
    kept: list[E] = []
    parsed: list[R] = []
    skipped: list[str] = []
    for entry in entries:
        try:
            value = parse(entry)
        except DataError as exc:
            if not skip_bad:
                raise DataError(f"{exc} (or set skip_bad=true on this data source to skip and count bad items)") from None
            skipped.append(str(exc))
            continue
        kept.append(entry)
        parsed.append(value)
        if limit and len(kept) >= limit:
            break
    if skipped:
        log.warning("%s: skipped %d bad item(s) (skip_bad=true); first: %s", name, len(skipped), skipped[0])
    return kept, parsed, skipped
