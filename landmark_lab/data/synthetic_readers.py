"""Readers for the synthetic datasets the study used: Datagen faces (two export layouts) and
Microsoft Face Synthetics. Both give projected-3D ("3d" convention) labels; both are lazy (files are
indexed once, images decoded per item).
"""

from __future__ import annotations

import ast
import json
from pathlib import Path

import cv2
import numpy as np

from landmark_lab.data.folder import read_image
from landmark_lab.data.indexing import check_image, index_entries, within
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


class FaceSyntheticsReader:
    """Microsoft Face Synthetics: ``NNNNNN.png`` + ``NNNNNN_ldmks.txt`` (68 iBUG points + 2 pupils).

    ``limit`` takes the first N images (the study used 10k of the 100k).
    """

    def __init__(self, root: str | Path, limit: int | None = None, skip_bad: bool = False) -> None:
        self.folder = Path(root)
        self.name = self.folder.name
        self.domain, self.convention = "synthetic", "3d"
        if not self.folder.is_dir():
            raise DataError(f"{self.folder}: Face Synthetics folder not found.")
        files = sorted(self.folder.glob("*_ldmks.txt"))
        # A render without its landmark file is an error too (or skipped and counted), never dropped silently.
        labelled = {f.name.replace("_ldmks.txt", ".png") for f in files}
        orphans = [p for p in sorted(self.folder.glob("*.png")) if not p.stem.endswith("_seg") and p.name not in labelled]
        kept, labels, self.skipped = index_entries([*orphans, *files], self._read, self.name, skip_bad, limit)
        self.images = [f.with_name(f.name.replace("_ldmks.txt", ".png")) for f in kept]
        if not self.images:
            raise DataError(f"{self.folder}: no NNNNNN_ldmks.txt files found.")
        self.landmarks = np.stack([pts[:68] for pts in labels])
        self.pupils = np.stack([pts[68:70] for pts in labels])
        self.ids = [f"facesynthetics/{p.stem}" for p in self.images]

    def _read(self, path: Path) -> np.ndarray:
        if path.suffix == ".png":
            raise DataError(f"{path}: has no landmark file {path.stem}_ldmks.txt beside it.")
        image = path.with_name(path.name.replace("_ldmks.txt", ".png"))
        if not image.is_file():
            raise DataError(f"{path}: its image {image.name} is missing.")
        within(self.folder, path)
        within(self.folder, image)
        try:
            pts = np.loadtxt(path, dtype=np.float32, ndmin=2)
        except ValueError:  # numpy's message quotes the offending text: not echoed (it may be another file's)
            raise DataError(f"{path}: unparsable landmark file; expected 70 rows of two numbers 'x y'.") from None
        if pts.shape != (70, 2):
            raise DataError(f"{path}: has {pts.shape[0]} rows of {pts.shape[1]} values; expected 70 rows 'x y' "
                            "(68 iBUG points + 2 pupils).")
        if not np.isfinite(pts).all():
            raise DataError(f"{path}: contains non-finite coordinates (nan/inf).")
        check_image(image, pts[:68], str(path))
        return pts

    def __len__(self) -> int:
        return len(self.images)

    def load(self, index: int) -> Sample:
        return Sample(read_image(self.images[index]), self.landmarks[index].copy(), self.domain, self.convention,
                      self.ids[index], meta={"pupils": self.pupils[index].copy()})
