"""benchmarks/faces_self.py: systems, the table with its means, strip crops, faces.py's --self hand-over."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"
sys.path.insert(0, str(BENCH))

import faces  # noqa: E402
import faces_self  # noqa: E402

DATA = faces.DEFAULT_DATA


def test_systems_set_render_fields_typed():
    assert faces_self.parse_system("swap") == ({}, None)
    overrides, refiner = faces_self.parse_system("swap+stabilize=0,mouth=source,crf=20,side_by_side=1")
    assert overrides == {"stabilize": 0.0, "mouth": "source", "crf": 20, "side_by_side": True}
    assert isinstance(overrides["stabilize"], float) and refiner is None
    assert faces_self.parse_system("swap+refiner=600,feather=0.1") == ({"feather": 0.1}, 600.0)
    for bad in ("default", "swap+nonsense=1", "swap+stabilize", "swap+target_faces=x", "swap+output=y"):
        with pytest.raises(SystemExit):
            faces_self.parse_system(bad)


def test_arguments_fail_early_and_faces_hands_over():
    args = faces_self.parse_args([])
    assert args.people == list(faces_self.DEFAULT_PEOPLE) and args.systems == ["swap"]
    assert (args.holdout, args.size, args.margin, args.threads, args.reference) == (0.2, 256, 0.2, 1, True)
    with pytest.raises(SystemExit, match="holdout"):
        faces_self.parse_args(["--holdout", "1.5"])
    with pytest.raises(SystemExit, match="write swap"):
        faces.main(["--self", "--systems", "cyclegan"])  # faces.py's own systems are not the self benchmark's


def test_table_rows_and_means_per_system():
    row = {"psnr": 30.0, "ssim": 0.9, "landmark": 2.0, "sharpness": 0.5, "warp_ratio": None, "found_share": 1.0}
    results = {
        "d3": {"swap": {**row, "render_s": 12.0}, "swap+stabilize=0": row},
        "d9": {"swap": {**row, "psnr": 32.0, "found_share": 0.5, "render_s": float("nan")}},
    }
    rows = faces_self.with_means(results, ["swap", "swap+stabilize=0"])
    assert [labels for labels, _ in rows][-1] == ["mean of 2", "swap"]  # one person: no mean row
    mean = rows[-1][1]
    assert mean["psnr"] == pytest.approx(31.0) and mean["found_share"] == pytest.approx(0.75)
    assert mean["warp_ratio"] is None and mean["render_s"] == 12.0  # undefined values are left out
    lines = faces_self.table_lines(results, ["swap", "swap+stabilize=0"])
    assert lines[0].startswith("| person | system | face PSNR | SSIM | lmk dist % |")
    cells = [c.strip() for c in lines[-1].split("|")[1:-1]]
    assert cells == ["mean of 2", "swap", "31.00", "0.900", "2.00", "0.500", "-", "75%", "12"]
    assert len(lines) == 2 + 3 + 1


def test_strip_crops_keep_pixels_and_stay_inside_the_frame():
    img = np.arange(60 * 80 * 3, dtype=np.uint32).reshape(60, 80, 3).astype(np.uint8)
    tile = faces_self._native_crop(img, np.array([40.0, 30.0]), 20)
    assert np.array_equal(tile, img[20:40, 30:50])  # no resampling
    corner = faces_self._native_crop(img, np.array([2.0, 58.0]), 20)
    assert np.array_equal(corner, img[40:60, 0:20])  # moved inside rather than padded


@pytest.mark.skipif(not (DATA / "talk_d18.mp4").is_file(), reason="the shared face videos are not here")
def test_one_person_end_to_end(tmp_path):
    out = tmp_path / "out"
    argv = ["--people", "d18", "--holdout", "0.05", "--size", "128", "--out", str(out), "--no-reference"]
    faces_self.main(argv)
    report = json.loads((out / "results.json").read_text())
    row = report["results"]["d18"]["swap"]
    assert row["frames"] == report["people"]["d18"]["clip_frames"] > 5
    assert row["found_share"] > 0.8 and 20.0 < row["psnr"] < 60.0 and 0.5 < row["ssim"] < 1.0
    assert row["landmark"] < 10.0 and row["sharpness"] > 0 and row["warp_ratio"] > 0
    assert (out / "d18_swap.jpg").is_file() and "| d18 | swap |" in (out / "results.md").read_text()
    rendered = (out / "d18_swap.mp4").stat().st_mtime_ns
    faces_self.main(argv)  # done: reused from results.json, nothing rendered again
    assert json.loads((out / "results.json").read_text())["results"]["d18"]["swap"] == row
    assert (out / "d18_swap.mp4").stat().st_mtime_ns == rendered
