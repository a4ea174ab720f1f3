"""Real photos without labels, and the same photos carrying a teacher's pseudo-labels.

``UnlabelledFolder`` reads images only (any names, nested folders), with the readers' bad-input rules: an
unreadable image is an error naming it, or with ``skip_bad`` skipped and counted. ``PseudoLabelled`` serves
photos with landmarks a model predicted (self-training), through the same ``load`` interface as every reader.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from landmark_lab.data.folder import IMAGE_EXTENSIONS, read_image
from landmark_lab.data.indexing import check_image, index_entries, within
from landmark_lab.data.sample import Sample
from landmark_lab.errors import DataError


def image_files(folder: Path) -> list[Path]:
    """Every image under ``folder`` (nested folders included, hidden ones skipped), in a stable order."""
    out = []
    for p in sorted(folder.rglob("*")):
        rel = p.relative_to(folder)
        if any(part.startswith(".") for part in rel.parts):
            continue
        if p.suffix.lower() in IMAGE_EXTENSIONS and p.is_file():
            out.append(p)
    return out


class UnlabelledFolder:
    """The photos of a folder tree, without labels. Every header is opened at construction (a damaged file fails
    before training, or is skipped and counted with ``skip_bad``); ``limit`` keeps the first that many."""

    def __init__(self, folder: str | Path, name: str | None = None, skip_bad: bool = False,
                 limit: int | None = None) -> None:
        self.folder = Path(folder).expanduser()
        if not self.folder.is_dir():
            raise DataError(f"{self.folder}: folder of unlabelled photos not found (data.unlabelled.root).")
        self.name = name or self.folder.name

        def check(path: Path) -> Path:
            within(self.folder, path)  # a link out of the folder would pull in a foreign file
            check_image(path)
            return path

        files = image_files(self.folder)
        _, self.images, self.skipped = index_entries(files, check, self.name, skip_bad, limit)
        if not self.images:
            raise DataError(f"{self.folder}: no image found (looked for {', '.join(IMAGE_EXTENSIONS)} files, "
                            "nested folders included).")
        self.ids = [f"{self.name}/{p.relative_to(self.folder).with_suffix('')}" for p in self.images]

    def __len__(self) -> int:
        return len(self.images)


class PseudoLabelled:
    """Photos with predicted landmarks (N, 68, 2) in image pixels: a reader like the labelled ones (domain
    ``real``, the 2d convention the teacher predicts in). ``point_weights`` (N, 68): each point's weight in the
    student's loss (0 leaves a point the teacher is unsure of out), served as ``meta["point_weight"]``."""

    def __init__(self, images: list[Path], landmarks: np.ndarray, ids: list[str], name: str = "pseudo",
                 point_weights: np.ndarray | None = None) -> None:
        if len(images) != len(landmarks) or len(images) != len(ids):
            raise ValueError("PseudoLabelled: images, landmarks and ids must have the same length")
        if point_weights is not None and np.shape(point_weights) != (len(images), np.shape(landmarks)[1]):
            raise ValueError("PseudoLabelled: point_weights must be (N, 68), one weight per pseudo-labelled point")
        self.images = [Path(p) for p in images]
        self.landmarks = np.asarray(landmarks, dtype=np.float32)
        self.point_weights = None if point_weights is None else np.asarray(point_weights, dtype=np.float32)
        self.ids, self.name = list(ids), name
        self.domain, self.convention = "real", "2d"

    def __len__(self) -> int:
        return len(self.images)

    def load(self, index: int) -> Sample:
        """Decode photo ``index`` with its pseudo-labels."""
        try:
            image = read_image(self.images[index])
        except DataError as exc:  # the photo changed since the teacher saw it
            raise DataError(f"{exc} (an unlabelled photo, pseudo-labelled earlier in this run)") from None
        meta = {} if self.point_weights is None else {"point_weight": self.point_weights[index].copy()}
        return Sample(image, self.landmarks[index].copy(), self.domain, self.convention, self.ids[index], meta=meta)
