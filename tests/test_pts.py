import numpy as np
import pytest

from landmark_lab.data.pts import read_pts, write_pts
from landmark_lab.errors import DataError


def _pts_text(rows: list[str], n: int | None = None) -> str:
    return f"version: 1\nn_points: {n if n is not None else len(rows)}\n{{\n" + "\n".join(rows) + "\n}\n"


def test_roundtrip_converts_one_based(tmp_path):
    lm = np.arange(136, dtype=np.float32).reshape(68, 2) / 3
    write_pts(tmp_path / "a.pts", lm)
    text = (tmp_path / "a.pts").read_text().splitlines()
    assert text[3].split() == ["1.000", "1.333"]  # file is 1-based
    np.testing.assert_allclose(read_pts(tmp_path / "a.pts"), lm, atol=1e-3)


def test_wrong_number_of_points_names_file(tmp_path):
    p = tmp_path / "bad.pts"
    p.write_text(_pts_text(["1 2"] * 69))
    with pytest.raises(DataError, match=r"bad\.pts.*69 points, expected 68"):
        read_pts(p)


def test_declared_count_mismatch(tmp_path):
    p = tmp_path / "bad.pts"
    p.write_text(_pts_text(["1 2"] * 68, n=70))
    with pytest.raises(DataError, match="n_points: 70 but the file lists 68"):
        read_pts(p)


def test_unparsable_number(tmp_path):
    p = tmp_path / "bad.pts"
    rows = ["1 2"] * 68
    rows[5] = "1 two"
    p.write_text(_pts_text(rows))
    with pytest.raises(DataError, match=r"point 6 is '1 two'"):
        read_pts(p)


def test_not_a_pts_file(tmp_path):
    p = tmp_path / "bad.pts"
    p.write_text("hello")
    with pytest.raises(DataError, match=r"not a \.pts file"):
        read_pts(p)
