"""Readers for the synthetic datasets the study used: Datagen faces (two export layouts) and
Microsoft Face Synthetics. Both give projected-3D ("3d" convention) labels; both are lazy (files are
indexed once, images decoded per item).
"""

from __future__ import annotations

import ast
import functools
import json
import os
from pathlib import Path

import cv2
import numpy as np

from landmark_lab.data.folder import read_image
from landmark_lab.data.indexing import check_image, files_key, index_entries, load_index, save_index, within
from landmark_lab.data.sample import Sample
from landmark_lab.errors import DataError
from landmark_lab.landmarks import NUM_LANDMARKS


def _read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise DataError(f"{path}: cannot read key-point JSON ({exc}).") from None


def _as_dict(value: object, path: Path) -> dict:
    # The older export stores these dicts as Python-literal strings.
    if isinstance(value, str):
        try:
            value = ast.literal_eval(value)
        except (ValueError, SyntaxError):
            raise DataError(f"{path}: unparsable key-point field {value[:60]!r}.") from None
    if not isinstance(value, dict):
        raise DataError(f"{path}: expected a dict of 68 key points, got {type(value).__name__}.")
    return value


def read_dgfaces_keypoints(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """(68, 2) image x/y landmarks and (68,) visibility from either Datagen key-point file.

    Datagen's ``pixel_2d.x`` (and the first value of the older ``[a, b]`` pairs) runs down the rows,
    so image x is its ``y`` and image y its ``x``.
    """
    data = _read_json(path)
    if "face" in data:  # current layout: face_standard_key_points.json
        points = data["face"].get("standard", {})
        keys = sorted(points, key=int)
        rows_cols = [(points[k]["pixel_2d"]["x"], points[k]["pixel_2d"]["y"]) for k in keys]
        vis = [str(points[k].get("is_visible", "true")).lower() == "true" for k in keys]
    else:  # older layout: standard_keypoints.json
        if "keypoints_2d_coordinates" not in data:
            raise DataError(f"{path}: neither 'face.standard' nor 'keypoints_2d_coordinates' found.")
        pts = _as_dict(data["keypoints_2d_coordinates"], path)
        visd = _as_dict(data.get("is_visible", {}), path)
        keys = sorted(pts, key=int)
        rows_cols = [tuple(pts[k]) for k in keys]
        vis = [bool(visd.get(k, True)) for k in keys]
    if len(rows_cols) != NUM_LANDMARKS:
        raise DataError(f"{path}: has {len(rows_cols)} key points, expected 68.")
    rc = np.asarray(rows_cols, dtype=np.float32)
    return rc[:, ::-1].copy(), np.asarray(vis, dtype=np.float32)


class DGFacesReader:
    """Datagen faces: ``datapoint_*/camera/`` (current export) or ``environment_*/camera_1/`` (older).

    16-bit RGBA or RGB renders become 8-bit RGB; transparent pixels are composited on ``background``.
    """

    LAYOUTS = (
        ("camera", "key_points/face_standard_key_points.json"),
        ("camera_1", "standard_keypoints.json"),
    )

    def __init__(self, root: str | Path, background: tuple[int, int, int] = (128, 128, 128), limit: int | None = None,
                 skip_bad: bool = False) -> None:
        self.folder = Path(root)
        self.name = self.folder.name
        self.domain, self.convention = "synthetic", "3d"
        self.background = np.array(background, dtype=np.float32)
        if not self.folder.is_dir():
            raise DataError(f"{self.folder}: Datagen faces folder not found.")
        datapoints = []
        for dp in sorted(p for p in self.folder.iterdir() if p.is_dir()):
            found = [(dp / cam, dp / cam / kp) for cam, kp in self.LAYOUTS if (dp / cam).is_dir()]
            if found:
                datapoints.append((dp, *found[0]))
        kept, labels, self.skipped = index_entries(datapoints, self._read, self.name, skip_bad, limit)
        self.images = [cam / "visible_spectrum_01.png" for _, cam, _ in kept]
        if not self.images:
            raise DataError(f"{self.folder}: no Datagen datapoint folders (datapoint_*/camera or environment_*/camera_1).")
        self.landmarks = np.stack([lm for lm, _ in labels])
        self.visibility = np.stack([vis for _, vis in labels])
        self.ids = [f"dgfaces/{p.parent.parent.name}" for p in self.images]

    def _read(self, entry: tuple[Path, Path, Path]) -> tuple[np.ndarray, np.ndarray]:
        dp, cam, kp = entry
        if not kp.is_file():
            raise DataError(f"{dp}: missing its key-point file {kp.relative_to(dp)}.")
        if not (cam / "visible_spectrum_01.png").is_file():
            raise DataError(f"{dp}: missing its image {cam.name}/visible_spectrum_01.png.")
        within(self.folder, kp)
        within(self.folder, cam / "visible_spectrum_01.png")
        lm, vis = read_dgfaces_keypoints(kp)
        check_image(cam / "visible_spectrum_01.png", lm, str(kp))
        return lm, vis

    def __len__(self) -> int:
        return len(self.images)

    def load(self, index: int) -> Sample:
        path = self.images[index]
        raw = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
        if raw is None:
            raise DataError(f"{path}: cannot decode image (corrupt or missing).")
        if raw.ndim == 3 and raw.shape[2] == 4:
            scale = 65535.0 if raw.dtype == np.uint16 else 255.0
            rgba = cv2.cvtColor(raw, cv2.COLOR_BGRA2RGBA).astype(np.float32) / scale
            alpha = rgba[..., 3:]
            image = np.clip(rgba[..., :3] * 255.0 * alpha + self.background * (1 - alpha) + 0.5, 0, 255).astype(np.uint8)
        else:
            image = read_image(path)
        return Sample(image, self.landmarks[index].copy(), self.domain, self.convention, self.ids[index],
                      visibility=self.visibility[index].copy(), meta=self.metadata(index))

    def metadata(self, index: int) -> dict:
        """What the export says beyond key points, in image x/y: ``face_box`` (x0, y0, x1, y1; it reaches above
        the forehead), ``pupils`` (2, 2: subject's right, left) and ``head_rotation`` (yaw/pitch/roll, degrees).
        Missing or unreadable metadata files are left out (they are not needed to train)."""
        cam = self.images[index].parent
        meta: dict = {}
        try:
            box = json.loads((cam / "face_bounding_box.json").read_text())
            # Rows/columns like the key points: min_x/max_x span the rows (image y).
            meta["face_box"] = (float(box["min_y"]), float(box["min_x"]), float(box["max_y"]), float(box["max_x"]))
        except (OSError, KeyError, ValueError, TypeError):
            pass
        try:
            actor = json.loads((cam.parent / "actor_metadata.json").read_text())
            meta["head_rotation"] = {k: float(v) for k, v in actor["head_metadata"]["head_rotation"].items()}
            eyes = next(iter(actor["center_of_pupil_point"]["2d"].values()))
            meta["pupils"] = np.array([[eyes[e]["y"], eyes[e]["x"]] for e in ("right_eye", "left_eye")], np.float32)
        except (OSError, KeyError, ValueError, TypeError, StopIteration, AttributeError):
            pass
        return meta


def _index_fits(index: dict[str, np.ndarray]) -> bool:
    names, points = index.get("names"), index.get("points")
    return (names is not None and points is not None and "skipped" in index and names.ndim == 1
            and points.shape == (len(names), 70, 2) and bool(np.isfinite(points).all())
            and all(str(n).endswith("_ldmks.txt") and "/" not in str(n) for n in names))


def read_facesynthetics_entry(folder: Path, path: Path) -> np.ndarray:
    """The 70 points (68 iBUG + 2 pupils) of one ``NNNNNN_ldmks.txt`` in ``folder``, checked against its image
    (module level, so large folders can be indexed in worker processes)."""
    if path.suffix == ".png":
        raise DataError(f"{path}: has no landmark file {path.stem}_ldmks.txt beside it.")
    image = path.with_name(path.name.replace("_ldmks.txt", ".png"))
    if not image.is_file():
        raise DataError(f"{path}: its image {image.name} is missing.")
    within(folder, path)
    within(folder, image)
    try:
        text = path.read_text()
        pts = np.array(text.split(), dtype=np.float32)  # 3x faster than np.loadtxt: it counts at 100k files
    except (OSError, UnicodeDecodeError, ValueError):  # the offending text is not echoed (it may be another file's)
        raise DataError(f"{path}: unparsable landmark file; expected 70 rows of two numbers 'x y'.") from None
    rows = sum(1 for line in text.splitlines() if line.strip())
    if pts.size != 140 or rows != 70:
        raise DataError(f"{path}: has {rows} rows of {pts.size / max(rows, 1):g} values; expected 70 rows 'x y' "
                        "(68 iBUG points + 2 pupils).")
    pts = pts.reshape(70, 2)
    if not np.isfinite(pts).all():
        raise DataError(f"{path}: contains non-finite coordinates (nan/inf).")
    check_image(image, pts[:68], str(path))
    return pts


class FaceSyntheticsReader:
    """Microsoft Face Synthetics: ``NNNNNN.png`` + ``NNNNNN_ldmks.txt`` (68 iBUG points + 2 pupils).

    ``limit`` takes the first N images (the study used 10k of the 100k).
    """

    def __init__(self, root: str | Path, limit: int | None = None, skip_bad: bool = False,
                 cache_dir: str | Path | None = None, workers: int | None = None) -> None:
        self.folder = Path(root)
        self.name = self.folder.name
        self.domain, self.convention = "synthetic", "3d"
        if not self.folder.is_dir():
            raise DataError(f"{self.folder}: Face Synthetics folder not found.")
        # Names, not Path objects, until they are needed: at 100k entries sorting and building Paths alone took
        # seconds of a warm start. One directory scan gives the names and (for the index key) the files' stats.
        with os.scandir(self.folder) as scan:
            listing = {e.name: e for e in scan if e.is_file()}
        labels = sorted(n for n in listing if n.endswith("_ldmks.txt"))
        renders = sorted(n for n in listing if n.endswith(".png") and not n[:-4].endswith("_seg"))
        # A render without its landmark file is an error too (or skipped and counted), never dropped silently.
        labelled = {n.replace("_ldmks.txt", ".png") for n in labels}
        orphans = [n for n in renders if n not in labelled]
        # The index (every label parsed, every image header checked) is cached under the key of the files' names,
        # sizes and times: a 100k-entry folder is indexed once, and an added, removed or changed file re-indexes it.
        key = files_key(self.folder, [listing[n] for n in (*labels, *renders)], reader="facesynthetics", limit=limit,
                        skip_bad=skip_bad) if cache_dir else ""
        index = load_index(cache_dir, key) if cache_dir else None
        if index is not None and not _index_fits(index):  # damaged or edited: the folder is indexed again
            index = None
        if index is None:
            entries = [self.folder / n for n in (*orphans, *labels)]
            kept, labels_read, self.skipped = index_entries(
                entries, functools.partial(read_facesynthetics_entry, self.folder), self.name, skip_bad, limit,
                int(workers or 1))
            names = [f.name for f in kept]
            points = np.stack(labels_read) if labels_read else np.zeros((0, 70, 2), np.float32)
            save_index(cache_dir, key, {"names": np.array(names, dtype=str), "points": points.astype(np.float32),
                                        "skipped": np.array(self.skipped, dtype=str)})
        else:
            names, points = index["names"].tolist(), index["points"]
            self.skipped = index["skipped"].tolist()
        stems = [n[: -len("_ldmks.txt")] for n in names]
        self.images = [self.folder / f"{stem}.png" for stem in stems]
        if not self.images:
            raise DataError(f"{self.folder}: no NNNNNN_ldmks.txt files found.")
        self.landmarks = np.ascontiguousarray(points[:, :68])
        self.pupils = np.ascontiguousarray(points[:, 68:70])
        self.ids = [f"facesynthetics/{stem}" for stem in stems]

    def __len__(self) -> int:
        return len(self.images)

    def load(self, index: int) -> Sample:
        return Sample(read_image(self.images[index]), self.landmarks[index].copy(), self.domain, self.convention,
                      self.ids[index], meta={"pupils": self.pupils[index].copy()})
