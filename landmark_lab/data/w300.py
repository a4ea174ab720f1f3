"""The 300-W layout: named splits over the official sub-folders."""

from __future__ import annotations

from pathlib import Path

from landmark_lab.data.folder import LandmarkFolder
from landmark_lab.errors import DataError

SPLITS: dict[str, tuple[str, ...]] = {
    "train": ("afw", "helen/trainset", "lfpw/trainset"),
    "common": ("helen/testset", "lfpw/testset"),
    "challenging": ("ibug",),
    "full": ("helen/testset", "lfpw/testset", "ibug"),
}
ALL_FOLDERS = ("afw", "helen/trainset", "helen/testset", "lfpw/trainset", "lfpw/testset", "ibug")


def resolve_split(root: str | Path, split: str | list[str] | tuple[str, ...]) -> list[Path]:
    """Sub-folders of ``root`` for a named split or an explicit list of folders.

    A listed folder is relative to ``root`` (``helen/trainset``) or a path of its own (``/data/my_test``,
    ``~/faces``): a test split held elsewhere need not be copied under the 300-W root.
    Raises a :class:`DataError` naming the missing folders and the ones that exist.
    """
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"300-W root {root} does not exist. Set data.real.root to the folder holding afw/, helen/, ...")
    if isinstance(split, str):
        if split not in SPLITS:
            raise DataError(
                f"unknown 300-W split {split!r}: use one of {sorted(SPLITS)} or a list of sub-folders "
                f"such as [afw, helen/trainset]."
            )
        names = SPLITS[split]
    else:
        names = tuple(split)
    names = tuple(str(n) for n in names)
    missing = [n for n in names if not (root / Path(n).expanduser()).is_dir()]
    if missing:
        found = [n for n in ALL_FOLDERS if (root / n).is_dir()]
        raise DataError(
            f"300-W split {split!r} needs {list(names)} under {root}, but {missing} "
            f"{'is' if len(missing) == 1 else 'are'} missing. Found: {found or 'none of the 300-W folders'}. "
            "Pick an explicit list of the folders you have, e.g. data.split=[lfpw/trainset] and "
            "data.train_split=[afw,helen/trainset] (with data=300w or data=study; data.real.test_split / "
            "data.real.train_split otherwise); a folder outside the root is given by its full path, "
            "e.g. data.split=[/path/to/my_test]."
        )
    return [root / Path(n).expanduser() for n in names]


def load_split(root: str | Path, split: str | list[str], lazy: bool = False) -> list[LandmarkFolder]:
    """One :class:`LandmarkFolder` per folder of the split (domain ``real``, convention ``2d``), named by its
    path under ``root`` (``helen/trainset``), or by its full path when it lies elsewhere. ``lazy``: each label
    file is read when first asked for (see :class:`LandmarkFolder`)."""
    root = Path(root)
    return [LandmarkFolder(f, "real", "2d", name=str(f.relative_to(root) if f.is_relative_to(root) else f), lazy=lazy)
            for f in resolve_split(root, split)]
