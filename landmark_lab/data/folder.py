"""The generic lazy folder reader: images + ``NAME.pts`` (the 300-W layout) or one CSV/JSON landmark table."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from landmark_lab.data.indexing import check_image, index_entries, within
from landmark_lab.data.pts import read_pts
from landmark_lab.data.sample import Sample
from landmark_lab.errors import DataError
from landmark_lab.landmarks import NUM_LANDMARKS
from landmark_lab.utils.io import inside

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp")


def read_image(path: str | Path) -> np.ndarray:
    """Decode an image file to RGB uint8, with a clear error for missing, corrupt or odd files."""
    path = Path(path)
    data = np.fromfile(path, dtype=np.uint8) if path.is_file() else None
    if data is None:
        raise DataError(f"{path}: image file not found.")
    try:
        img = cv2.imdecode(data, cv2.IMREAD_UNCHANGED) if data.size else None
    except cv2.error:  # OpenCV refuses images beyond its size limits with an exception, not None
        raise DataError(f"{path}: cannot decode image (too large for OpenCV, or damaged). Scale it down or replace it.") from None
    if img is None:
        raise DataError(f"{path}: cannot decode image (corrupt or not an image). Replace or remove it.")
    if img.dtype == np.uint16:
        img = (img / 257.0 + 0.5).astype(np.uint8)
    elif img.dtype != np.uint8:
        raise DataError(f"{path}: unsupported pixel type {img.dtype}; expected 8- or 16-bit.")
    if img.ndim == 2:
        img = cv2.cvtColor(img, cv2.COLOR_GRAY2RGB)
    elif img.shape[2] == 4:
        img = cv2.cvtColor(img, cv2.COLOR_BGRA2RGB)
    elif img.shape[2] == 3:
        img = cv2.cvtColor(img, cv2.COLOR_BGR2RGB)
    else:
        raise DataError(f"{path}: unsupported channel count {img.shape[2]}.")
    return img


class _Pairs(list):
    """A JSON object as the list of its (key, value) pairs, duplicates kept."""


def _table_rows(path: Path) -> list[tuple[str, str, Any]]:
    """``(where, image name, coordinates)`` per face of a CSV (136 strings) or JSON (68 pairs) landmark table."""
    if path.suffix.lower() == ".csv":
        # utf-8-sig: spreadsheet programs save CSV with a byte-order mark, which would hide the 'image' header
        with path.open(newline="", encoding="utf-8-sig") as f:
            rows = list(csv.reader(f))
        if not rows or rows[0][0].strip().lower() not in ("image", "file", "filename", "path"):
            raise DataError(f"{path}: a landmark CSV needs a header row whose first column is 'image' "
                            "(then x0,y0,x1,y1,...,x67,y67).")
        return [(f"{path}, line {i + 2}", r[0].strip(), r[1:]) for i, r in enumerate(rows[1:]) if any(c.strip() for c in r)]
    if path.suffix.lower() == ".json":
        try:  # objects kept as their (key, value) pairs: a name given twice must not silently keep the last
            data = json.loads(path.read_text(encoding="utf-8-sig"), object_pairs_hook=_Pairs)
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise DataError(f"{path}: cannot read landmark JSON ({exc}).") from None
        if isinstance(data, _Pairs):
            entries = list(data)
        elif isinstance(data, list) and all(isinstance(e, _Pairs) and {"image", "landmarks"} <= dict(e).keys()
                                            for e in data):
            entries = [(dict(e)["image"], dict(e)["landmarks"]) for e in data]
        else:
            raise DataError(f"{path}: expected {{\"NAME.jpg\": [[x, y], ... 68]}} or "
                            "[{\"image\": \"NAME.jpg\", \"landmarks\": [[x, y], ... 68]}, ...].")
        return [(f"{path}, entry {name!r}", str(name), pts) for name, pts in entries]
    raise DataError(f"{path}: landmark table must be .csv or .json.")


def _parse_row(where: str, values: Any) -> np.ndarray:
    """68 (x, y) points from 136 numbers or 68 pairs; any other shape is refused, never reshaped."""
    try:
        arr = np.asarray(values, dtype=object)
    except ValueError:  # ragged nesting
        raise DataError(f"{where}: coordinates are not a regular list; expected 68 [x, y] pairs or 136 numbers.") from None
    if arr.shape not in ((2 * NUM_LANDMARKS,), (NUM_LANDMARKS, 2)):
        got = f"{arr.shape[0]} coordinates" if arr.ndim == 1 else f"shape {'x'.join(map(str, arr.shape))}"
        raise DataError(f"{where}: has {got}, expected 68 [x, y] pairs or {2 * NUM_LANDMARKS} numbers "
                        "(x0,y0,...,x67,y67).")
    try:
        pts = np.array([float(v) for v in arr.reshape(-1)], dtype=np.float32).reshape(NUM_LANDMARKS, 2)
    except (TypeError, ValueError):
        raise DataError(f"{where}: non-numeric coordinate.") from None
    if not np.isfinite(pts).all():
        raise DataError(f"{where}: contains non-finite coordinates (nan/inf).")
    return pts


def _parse_pair(group: list[Path], folder: Path) -> np.ndarray:
    """Landmarks of one ``NAME.<image>`` + ``NAME.pts`` pair in ``folder``, checked against the image's size."""
    for p in group:
        within(folder, p)
    images = [p for p in group if p.suffix.lower() != ".pts"]
    pts = [p for p in group if p.suffix.lower() == ".pts"]
    if not pts:
        raise DataError(f"{images[0]}: has no landmark file {images[0].with_suffix('.pts').name} beside it.")
    if not images:
        raise DataError(f"{pts[0]}: has no image beside it (looked for {pts[0].stem}{{{','.join(IMAGE_EXTENSIONS)}}}).")
    if len(images) > 1:
        raise DataError(f"{pts[0]}: several images share its name ({', '.join(p.name for p in images)}); keep one.")
    lm = read_pts(pts[0])
    check_image(images[0], lm, str(pts[0]))
    return lm


class LandmarkFolder:
    """Faces of one folder, images decoded per item: the generic reader for your own data.

    Labels come either from ``NAME.pts`` beside each ``NAME.{jpg,png,...}`` (the 300-W layout;
    1-based in the file, like 300-W) or from one table ``labels`` inside the folder: a CSV with a
    header ``image,x0,y0,...,x67,y67`` or a JSON ``{"NAME.jpg": [[x, y], ...]}`` / list of
    ``{"image", "landmarks"}``, in 0-based pixel coordinates unless ``one_based``. Every label is
    parsed at construction so a malformed file fails (or is skipped and counted, with ``skip_bad``)
    before training starts.
    """

    def __init__(self, folder: str | Path, domain: str, convention: str, name: str | None = None,
                 labels: str | None = None, one_based: bool = False, skip_bad: bool = False,
                 limit: int | None = None, lazy: bool = False) -> None:
        self.folder = Path(folder)
        self.domain = domain
        self.convention = convention
        self.name = name or self.folder.name
        if not self.folder.is_dir():
            raise DataError(f"{self.folder}: folder not found.")
        shift = 1.0 if one_based else 0.0
        if lazy:
            self._open_lazy(labels, skip_bad, limit)
            return
        if labels:
            table = inside(self.folder, labels, f"labels={labels!r}")
            if not table.is_file():
                raise DataError(f"{table}: landmark table not found (labels={labels!r} is read inside {self.folder}).")

            first: dict[Path, str] = {}

            def parse(row: tuple[str, str, Any]) -> tuple[Path, np.ndarray]:
                where, image, values = row
                # A table names files inside its folder: '../other/x.jpg' would pull in a foreign image.
                path = inside(self.folder, image, where)
                if path in first:  # a repeated row would count one face twice (or label it twice, differently)
                    raise DataError(f"{where}: lists {image!r} again (first at {first[path].split(', ', 1)[-1]}); "
                                    "each image once. Remove one of the two")
                first[path] = where
                pts = _parse_row(where, values) - shift
                check_image(path, pts, where)
                return path, pts

            _, parsed, self.skipped = index_entries(_table_rows(table), parse, self.name, skip_bad, limit)
            self.images = [path for path, _ in parsed]
            lms = [pts for _, pts in parsed]
        else:
            # Every image needs its NAME.pts and every NAME.pts its image: an unpaired file is an error
            # (or, with skip_bad, skipped and counted), never dropped without a word.
            files = sorted(p for p in self.folder.iterdir() if p.suffix.lower() in (*IMAGE_EXTENSIONS, ".pts"))
            stems: dict[str, list[Path]] = {}
            for p in files:
                stems.setdefault(p.stem, []).append(p)
            entries = [sorted(group, key=lambda p: p.suffix.lower() == ".pts") for _, group in sorted(stems.items())]
            kept, lms, self.skipped = index_entries(entries, lambda group: _parse_pair(group, self.folder), self.name,
                                                    skip_bad, limit)
            self.images = [group[0] for group in kept]
        if not self.images:
            raise DataError(
                f"{self.folder}: no labelled image found (looked for "
                + (f"the rows of {labels}" if labels else f"NAME{{{','.join(IMAGE_EXTENSIONS)}}} + NAME.pts") + ")."
            )
        self.landmarks = np.stack(lms)
        self.ids = [f"{self.name}/{p.stem}" for p in self.images]

    def _open_lazy(self, labels: str | None, skip_bad: bool, limit: int | None) -> None:
        """Index the images only; a face's ``NAME.pts`` is read the first time its labels are asked for. For
        photos whose labels training must never open (``data/unlabelled=pool_rest``)."""
        if labels or skip_bad:
            raise DataError(f"{self.folder}: labels read on demand (data/unlabelled=pool_rest) need NAME.pts beside "
                            "every image and no skip_bad: a table or a skipped file would be read in full at start.")
        stems: dict[str, list[Path]] = {}
        for p in sorted(p for p in self.folder.iterdir() if p.suffix.lower() in IMAGE_EXTENSIONS):
            stems.setdefault(p.stem, []).append(p)
        for stem, group in stems.items():
            if len(group) > 1:
                raise DataError(f"{self.folder}: several images share the name {stem!r} "
                                f"({', '.join(p.name for p in group)}); keep one.")
        self.images = [group[0] for _, group in sorted(stems.items())][: limit or None]
        if not self.images:
            raise DataError(f"{self.folder}: no image found (looked for NAME{{{','.join(IMAGE_EXTENSIONS)}}}).")
        self.skipped = []
        self.landmarks = LazyLabels(self.images, self.folder)
        self.ids = [f"{self.name}/{p.stem}" for p in self.images]

    def __len__(self) -> int:
        return len(self.images)

    def load(self, index: int) -> Sample:
        """Decode sample ``index``."""
        return Sample(
            image=read_image(self.images[index]),
            landmarks=self.landmarks[index].copy(),
            domain=self.domain,
            convention=self.convention,
            id=self.ids[index],
        )


class LazyLabels:
    """The labels of a folder's images, each ``NAME.pts`` parsed (and checked) the first time it is indexed."""

    def __init__(self, images: list[Path], folder: Path) -> None:
        self.images, self.folder = images, folder
        self._parsed: dict[int, np.ndarray] = {}

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> np.ndarray:
        index = int(index)
        if index not in self._parsed:
            image = self.images[index]
            pts = image.with_suffix(".pts")
            self._parsed[index] = _parse_pair([image, pts] if pts.is_file() else [image], self.folder)
        return self._parsed[index]

    @property
    def opened(self) -> list[int]:
        """Indices whose labels were read so far."""
        return sorted(self._parsed)
