import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest

from landmark_lab.data.synthetic_readers import DGFacesReader, FaceSyntheticsReader
from landmark_lab.errors import DataError

from .conftest import SHARED, needs_shared

needs = needs_shared("dgfaces", "facesynthetics")


def _anatomy(lm: np.ndarray, between_share: float = 0.95) -> None:
    """Subject's right eye corner (36) is image-left of 45; the nose tip (30) is between and below the eyes
    (``between_share`` of faces: in near-profile views the nose tip passes the far eye corner)."""
    assert (lm[:, 36, 0] < lm[:, 45, 0]).mean() > 0.95
    between = (lm[:, 30, 0] > lm[:, 36, 0]) & (lm[:, 30, 0] < lm[:, 45, 0])
    below = lm[:, 30, 1] > lm[:, [36, 45], 1].mean(1)
    assert between.mean() > between_share and below.mean() > 0.95
    assert (lm[:, 8, 1] > lm[:, 30, 1]).mean() > 0.95  # chin below the nose


@needs
@pytest.mark.parametrize("layout", ["dgfaces", "dgfaces_v1"])
def test_dgfaces_axes_give_correct_anatomy(layout):
    reader = DGFacesReader(SHARED / layout)
    assert len(reader) == 100
    _anatomy(reader.landmarks)
    s = reader.load(0)
    assert s.image.dtype == np.uint8 and s.image.shape == (128, 128, 3)
    assert s.convention == "3d" and s.visibility.shape == (68,)


@needs
def test_facesynthetics_reader_keeps_pupils_and_limit():
    reader = FaceSyntheticsReader(SHARED / "facesynthetics", limit=10)
    assert len(reader) == 10 and reader.pupils.shape == (10, 2, 2)
    _anatomy(FaceSyntheticsReader(SHARED / "facesynthetics").landmarks, between_share=0.6)  # many profiles
    s = reader.load(3)
    assert s.image.shape == (512, 512, 3) and s.meta["pupils"].shape == (2, 2)
    # row 69 is the subject's right pupil: nearer the right eye (36-41) than the left one
    lm, pupils = reader.landmarks, reader.pupils
    right, left = lm[:, 36:42].mean(1), lm[:, 42:48].mean(1)
    assert (np.linalg.norm(pupils[:, 0] - right, axis=1) < np.linalg.norm(pupils[:, 0] - left, axis=1)).all()


@needs
def test_bad_synthetic_files_are_named_or_skipped(tmp_path):
    for name in ("000000", "000001"):
        shutil.copy(SHARED / "facesynthetics" / f"{name}.png", tmp_path / f"{name}.png")
        shutil.copy(SHARED / "facesynthetics" / f"{name}_ldmks.txt", tmp_path / f"{name}_ldmks.txt")
    rows = (tmp_path / "000001_ldmks.txt").read_text().splitlines()
    (tmp_path / "000001_ldmks.txt").write_text("\n".join([*rows, rows[-1]]))
    with pytest.raises(DataError, match=r"000001_ldmks\.txt: has 71 rows"):
        FaceSyntheticsReader(tmp_path)
    assert len(FaceSyntheticsReader(tmp_path, skip_bad=True).skipped) == 1

    dp = tmp_path / "dg" / "datapoint_1"
    shutil.copytree(next((SHARED / "dgfaces").glob("datapoint_*")), dp)
    (dp / "camera" / "key_points" / "face_standard_key_points.json").unlink()
    with pytest.raises(DataError, match=r"datapoint_1: missing its key-point file"):
        DGFacesReader(tmp_path / "dg")

    # An image the reader cannot use (here 32-bit float, as an odd export might write) is named when the
    # folder is indexed, before any training step.
    (tmp_path / "000001_ldmks.txt").write_text("\n".join(rows))
    (tmp_path / "000000.png").write_bytes(cv2.imencode(".tiff", np.zeros((8, 8, 3), np.float32))[1].tobytes())
    with pytest.raises(DataError, match=r"000000\.png: cannot open image"):
        FaceSyntheticsReader(tmp_path)
    (tmp_path / "000000.png").unlink()
    with pytest.raises(DataError, match=r"000000_ldmks\.txt: its image 000000\.png is missing"):
        FaceSyntheticsReader(tmp_path)


@needs
@pytest.mark.parametrize("folder", ["dgfaces", "dgfaces_v1"])
def test_dgfaces_metadata_is_in_image_axes(folder):
    reader = DGFacesReader(SHARED / folder)
    for i in range(5):
        s = reader.load(i)
        x0, y0, x1, _ = s.meta["face_box"]
        lm = s.landmarks
        # the box spans the landmarks horizontally and reaches above them (forehead)
        assert x0 - 3 <= lm[:, 0].min() and lm[:, 0].max() <= x1 + 3 and y0 < lm[:, 1].min()
        right, left = lm[36:42].mean(0), lm[42:48].mean(0)
        assert np.linalg.norm(s.meta["pupils"][0] - right) < 5 and np.linalg.norm(s.meta["pupils"][1] - left) < 5
        assert set(s.meta["head_rotation"]) == {"yaw", "pitch", "roll"}


def _renders(folder: Path, n: int = 3) -> Path:
    """A tiny Face Synthetics-layout folder: NNNNNN.png + NNNNNN_ldmks.txt (68 points + 2 pupils)."""
    import cv2

    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for i in range(n):
        cv2.imwrite(str(folder / f"{i:06d}.png"), np.full((64, 64, 3), 40 * i, np.uint8))
        np.savetxt(folder / f"{i:06d}_ldmks.txt", rng.uniform(4, 60, (70, 2)), fmt="%.3f")
    return folder


def test_a_large_folder_is_indexed_in_parallel_once_and_again_when_a_file_changes(tmp_path, caplog):
    from landmark_lab.data.indexing import PARALLEL_FROM
    from landmark_lab.data.scale import link_farm

    n = PARALLEL_FROM + 500
    big = link_farm(_renders(tmp_path / "src"), tmp_path / "big", n, progress=False)
    serial = FaceSyntheticsReader(big, workers=1)
    parallel = FaceSyntheticsReader(big, workers=2, cache_dir=tmp_path / "index")
    assert len(serial) == len(parallel) == n and serial.images == parallel.images
    assert np.array_equal(serial.landmarks, parallel.landmarks) and np.array_equal(serial.pupils, parallel.pupils)
    (entry,) = (tmp_path / "index").iterdir()
    warm = FaceSyntheticsReader(big, workers=2, cache_dir=tmp_path / "index")
    assert warm.images == serial.images and np.array_equal(warm.landmarks, serial.landmarks)
    assert list((tmp_path / "index").iterdir()) == [entry]  # read back, not rebuilt
    # a changed file is a new key: indexed again, and its bad line is found by the workers and named
    bad = big / f"{n - 7:06d}_ldmks.txt"
    bad.unlink()
    bad.write_text("1 2\n" * 69)
    with pytest.raises(DataError, match=rf"{bad.name}: has 69 rows of 2 values"):
        FaceSyntheticsReader(big, workers=2, cache_dir=tmp_path / "index")
    skipping = FaceSyntheticsReader(big, workers=2, cache_dir=tmp_path / "index", skip_bad=True)
    assert len(skipping) == n - 1 and len(skipping.skipped) == 1
    again = FaceSyntheticsReader(big, workers=2, cache_dir=tmp_path / "index", skip_bad=True)
    assert again.skipped == skipping.skipped and again.images == skipping.images
    assert len(FaceSyntheticsReader(big, workers=2, limit=1000)) == 1000
