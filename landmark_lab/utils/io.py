"""Safe file I/O shared by every writer and reader: atomic writes, pickle-free loads, paths kept in their folder."""

from __future__ import annotations

import contextlib
import csv
import os
import pickle
import re
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any, Literal

from landmark_lab.errors import DataError


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success it replaces ``path`` in one rename.

    A crash or an exception leaves the old file (if any) untouched and removes the half-written one.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.tmp{os.getpid()}{path.suffix}")  # same suffix: some writers check it
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def write_text_atomic(path: str | Path, text: str) -> None:
    """Write ``text`` to ``path`` atomically (UTF-8)."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def write_csv_atomic(path: str | Path, rows: Iterable[dict[str, Any]], fieldnames: Sequence[str],
                     extrasaction: Literal["raise", "ignore"] = "raise") -> None:
    """Write ``rows`` as a CSV table (header first) to ``path`` atomically."""
    with atomic_path(path) as tmp, tmp.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=fieldnames, extrasaction=extrasaction)
        writer.writeheader()
        writer.writerows(rows)


def torch_save_atomic(obj: Any, path: str | Path) -> Path:
    """``torch.save`` atomically; returns ``path``."""
    import torch

    with atomic_path(path) as tmp:
        torch.save(obj, tmp)
    return Path(path)


def load_torch_file(path: str | Path, what: str = "checkpoint") -> Any:
    """``torch.load(path, weights_only=True)``: tensors and plain containers only, never code.

    A file that needs anything else (a pickled object, a crafted payload) is refused with a
    :class:`DataError` naming it; nothing in it runs.
    """
    import torch

    path = Path(path).expanduser()
    if not path.is_file():
        raise DataError(f"{path}: {what} not found.")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        found = re.search(r"Unsupported global: GLOBAL ([\w.]+)", str(exc))
        if not found:  # not a pickle of known types at all (an image, a text file, a truncated download ...)
            raise DataError(f"{path}: not a {what} file: torch.load cannot read it (nothing in it was run).") from None
        what_in_it = f"it asks for {found.group(1)}"
        raise DataError(
            f"{path}: refused to load this {what}: {what_in_it}; only tensors and plain containers are loaded, "
            "since anything else could run code. Use a checkpoint landmark_lab wrote, or a plain state_dict."
        ) from None
    except Exception as exc:
        raise DataError(f"{path}: cannot read this {what} ({type(exc).__name__}: {str(exc)[:200]}).") from None


def relative_to_run(path: str | Path, base: str | Path) -> str:
    """``path`` relative to ``base``, both resolved first: a run folder reached through a symbolic link (logs/ on a
    scratch disk) names its files by the link while Lightning names them by their real location."""
    return str(Path(path).resolve().relative_to(Path(base).resolve()))


def inside(base: str | Path, relative: str | Path, what: str) -> Path:
    """``base / relative`` resolved, refused unless it stays inside ``base`` (no ``..`` or absolute escapes).

    Paths read back from files (a run record, a label table) must not point elsewhere on the disk.
    """
    base_r = Path(base).resolve()
    target = (base_r / Path(relative)).resolve()
    if not target.is_relative_to(base_r):
        raise DataError(f"{what}: {str(relative)!r} points outside {base}; paths in it must stay inside that folder.")
    return target


def snippet(text: str, limit: int = 24) -> str:
    """At most ``limit`` printable characters of a bad line, for an error message: enough to find the line, never a
    whole line of a file that may hold something else (a mislinked file's secrets, a binary blob)."""
    clean = "".join(c if c.isprintable() else "?" for c in str(text))
    return clean if len(clean) <= limit else clean[:limit] + "…"
