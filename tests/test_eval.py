"""retarget eval end to end on synthetic videos the tests write (retarget.eval.evaluate, score, CLI)."""

from __future__ import annotations

import json
from fractions import Fraction
from pathlib import Path

import cv2
import numpy as np
import pytest
from typer.testing import CliRunner

from helpers import make_video, write_text_file
from retarget.cli import app
from retarget.config import EvalConfig
from retarget.errors import RetargetError
from retarget.eval.evaluate import evaluate
from retarget.eval.score import score_frames
from retarget.video.writer import VideoWriter

T = 12


def _pattern(t: int, h: int = 48, w: int = 64, cell: int = 6) -> np.ndarray:
    """A smooth tinted texture (detail about ``cell`` px) moving 2 px right per frame.

    The detail is in brightness, as in real video: H.264's 4:2:0 chroma would blur
    fine colour detail differently at each shift and add flicker of its own.
    """
    small = np.random.default_rng(0).integers(20, 200, (h // cell, w // cell), dtype=np.uint8)
    tex = cv2.resize(small, (w, h), interpolation=cv2.INTER_CUBIC).astype(np.int16)
    rgb = np.clip(tex[..., None] + np.array([40, 20, 0], np.int16), 0, 255).astype(np.uint8)
    return np.roll(rgb, 2 * t, axis=1)


def _colour_map(img: np.ndarray) -> np.ndarray:
    """A fixed per-pixel colour map: channels swapped and inverted."""
    return np.ascontiguousarray(255 - img[..., ::-1])


def _noisy(img: np.ndarray, t: int) -> np.ndarray:
    noise = np.random.default_rng(100 + t).normal(0, 12, img.shape)
    return np.clip(img + noise, 0, 255).astype(np.uint8)


def _write(path: Path, frames: list[np.ndarray], fps: int = 25) -> str:
    h, w = frames[0].shape[:2]
    with VideoWriter(path, w, h, Fraction(1, fps), fps, crf=0, preset="ultrafast") as wr:
        for i, f in enumerate(frames):
            wr.write(f, pts=i)
    return str(path)


@pytest.fixture(scope="module")
def videos(tmp_path_factory) -> dict[str, str]:
    d = tmp_path_factory.mktemp("eval")
    src = [_pattern(t) for t in range(T)]
    mapped = [_colour_map(f) for f in src]
    return {
        "source": _write(d / "source.mp4", src),
        "mapped": _write(d / "mapped.mp4", mapped),
        "mapped_again": _write(d / "mapped_again.mp4", mapped),
        "noisy": _write(d / "noisy.mp4", [_noisy(f, t) for t, f in enumerate(mapped)]),
        "short": _write(d / "short.mp4", mapped[:9]),
    }


def test_consistent_output_has_the_sources_warping_error_and_noise_raises_it(videos):
    good = evaluate(EvalConfig(output=videos["mapped"], source=videos["source"])).scores["warping_error"]
    bad = evaluate(EvalConfig(output=videos["noisy"], source=videos["source"])).scores["warping_error"]
    assert good["pairs"] == bad["pairs"] == T - 1
    assert good["source"] == pytest.approx(bad["source"])  # the source's own error does not depend on the output
    assert abs(good["output"] - good["source"]) < 1.0
    assert 0.75 < good["ratio"] < 1.35
    assert bad["output"] > good["output"] + 4
    assert bad["ratio"] > 2 * good["ratio"]


def test_output_equal_to_truth_has_zero_flicker_and_capped_psnr(videos):
    res = evaluate(EvalConfig(output=videos["mapped"], source=videos["source"], truth=videos["mapped_again"]))
    t = res.scores["truth"]
    assert t["flicker"] == 0.0 and t["psnr"] == t["psnr_cap"] == 100.0
    assert t["ssim"] == pytest.approx(1.0, abs=1e-6)
    assert t["frames"] == T and t["pairs"] == T - 1
    assert res.scores["warping_error"]["truth"] == pytest.approx(res.scores["warping_error"]["output"])
    noisy = evaluate(EvalConfig(output=videos["noisy"], truth=videos["mapped"])).scores["truth"]
    assert noisy["flicker"] > 5 and 20 < noisy["psnr"] < 40 and noisy["ssim"] < 0.95
    assert evaluate(EvalConfig(output=videos["noisy"], truth=videos["mapped"])).scores["warping_error"] is None


def test_mismatched_frame_counts_are_reported(videos):
    res = evaluate(EvalConfig(output=videos["short"], source=videos["source"]))
    f = res.frames
    assert (f["output"], f["source"], f["matched"], f["unmatched_output"], f["unmatched_source"]) == (9, T, 9, 0, 3)
    assert any("frame counts differ" in n for n in res.notes)
    assert res.scores["warping_error"]["pairs"] == 8
    rev = evaluate(EvalConfig(output=videos["source"], source=videos["short"]))
    assert (rev.frames["matched"], rev.frames["unmatched_output"]) == (9, 3)


def test_frames_are_matched_by_timestamp_across_a_hole(tmp_path):
    full = make_video(tmp_path / "full.mkv", frames=20, size=(64, 48))
    holed = make_video(tmp_path / "holed.mkv", frames=20, size=(64, 48), drop=[5, 6])
    res = evaluate(EvalConfig(output=str(holed), source=str(full), truth=str(full), per_frame=True))
    f = res.frames
    assert (f["output"], f["matched"], f["unmatched_source"], f["unmatched_truth"]) == (18, 18, 2, 2)
    # the same pictures at the same times (re-encoded, so not bit-exact)
    assert res.scores["truth"]["psnr"] > 35
    times = res.scores["per_frame"]["time"]
    assert len(times) == 18 and not any(0.19 < t < 0.25 for t in times)  # frames 5, 6 (0.20, 0.24 s) missing
    assert all(len(v) == 18 for v in res.scores["per_frame"].values())
    # the other way round: two output frames have no source; no pair spans the gap
    rev = evaluate(EvalConfig(output=str(full), source=str(holed)))
    assert (rev.frames["matched"], rev.frames["unmatched_output"], rev.scores["gaps"]) == (18, 2, 1)
    assert rev.scores["warping_error"]["pairs"] == 4 + 12


def test_model_size_output_is_compared_at_its_size(tmp_path):
    # render --output-size model in full-frame mode: the centre square at the model size
    src = [_pattern(t, 96, 128, cell=16) for t in range(T)]
    square = [cv2.resize(_colour_map(f)[:, 16:112], (64, 64), interpolation=cv2.INTER_AREA) for f in src]
    res = evaluate(EvalConfig(output=_write(tmp_path / "sq.mp4", square), source=_write(tmp_path / "src.mp4", src)))
    assert res.size["compared"] == [64, 64] and res.size["source"] == [128, 96]
    assert any("centre-cropped" in n for n in res.notes)
    w = res.scores["warping_error"]
    # near the source's (the small output's own 8-bit rounding is not averaged away)
    assert abs(w["output"] - w["source"]) < 0.6 and 0.75 < w["ratio"] < 1.5


def test_side_by_side_output_gets_a_note(tmp_path):
    src = [_pattern(t) for t in range(4)]
    sbs = _write(tmp_path / "sbs.mp4", [np.concatenate([f, _colour_map(f)], axis=1) for f in src])
    res = evaluate(EvalConfig(output=sbs, source=_write(tmp_path / "src.mp4", src)))
    assert any("side-by-side" in n for n in res.notes)


def test_score_frames_on_lists():
    src = [_pattern(t) for t in range(6)]
    mapped = [_colour_map(f) for f in src]
    noisy = [_noisy(f, t) for t, f in enumerate(mapped)]
    good = score_frames(mapped, src, truth=mapped)
    bad = score_frames(noisy, src, truth=mapped, per_frame=True)
    assert good["warping_error"]["ratio"] == pytest.approx(1.0, abs=0.2)
    assert bad["warping_error"]["ratio"] > 2
    assert good["truth"]["psnr"] == 100.0 and good["truth"]["flicker"] == 0.0
    assert bad["per_frame"]["warp_output"][0] is None and len(bad["per_frame"]["psnr"]) == 6
    assert good["size"] == [64, 48] and good["faces"] is None
    with pytest.raises(ValueError):
        score_frames(mapped, src[:3])


def test_flicker_comes_with_a_still_and_a_source_reference():
    src = [_pattern(t) for t in range(6)]
    truth = [_colour_map(f) for f in src]
    noisy = [_noisy(f, t) for t, f in enumerate(truth)]
    t = score_frames(noisy, src, truth=truth)["truth"]
    moves = np.mean([np.abs(truth[i + 1].astype(int) - truth[i]).mean() for i in range(5)])
    assert t["flicker_still"] == pytest.approx(moves)  # an output that never changes
    still = score_frames([noisy[0]] * 6, src, truth=truth)["truth"]
    assert still["flicker"] == pytest.approx(still["flicker_still"])
    # a truth that only brightens the source: the source's changes are nearly the truth's
    bright = [np.clip(f.astype(int) + 30, 0, 255).astype(np.uint8) for f in src]
    close = score_frames(noisy, src, truth=bright)["truth"]
    assert close["flicker_source"] < 0.1 * close["flicker"]
    # an inverted look moves the wrong way at every edge: steady, yet worse than standing still
    assert t["flicker_source"] > 1.5 * t["flicker_still"]
    assert score_frames(noisy, truth=truth)["truth"]["flicker_source"] is None


def test_bad_inputs_are_one_line_errors_naming_the_file(videos, tmp_path):
    with pytest.raises(RetargetError, match="nothing to compare"):
        evaluate(EvalConfig(output=videos["mapped"]))
    with pytest.raises(RetargetError, match="--faces"):
        evaluate(EvalConfig(output=videos["mapped"], truth=videos["mapped"], faces=True))
    text = write_text_file(tmp_path / "notes.mp4")
    with pytest.raises(RetargetError, match="notes.mp4"):
        evaluate(EvalConfig(output=videos["mapped"], source=str(text)))
    late = tmp_path / "late.mkv"
    make_video(late, frames=12, size=(64, 48), drop=range(11))  # one frame, at 0.44 s; short ends at 0.32 s
    with pytest.raises(RetargetError, match="no frame matched"):
        evaluate(EvalConfig(output=videos["short"], source=str(late)))


runner = CliRunner()


def test_cli_json_parses_and_nothing_else_is_on_stdout(videos):
    result = runner.invoke(
        app, ["eval", videos["noisy"], "--source", videos["source"], "--truth", videos["mapped"], "--json"]
    )
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["output"] == videos["noisy"] and data["frames"]["matched"] == T
    assert data["warping_error"]["ratio"] > 1.5 and data["truth"]["psnr"] < 40
    # Lai et al.'s E_warp beside the L1 figure: squared on [0, 1], so far below it, and noisier in ratio
    e = data["e_warp"]
    assert e["pairs"] == data["warping_error"]["pairs"] == T - 1 and e["cuts"] == 0
    assert 0 < e["output"] < 0.1 < data["warping_error"]["output"] and e["ratio"] > data["warping_error"]["ratio"]
    assert data["truth"]["cuts"] == 0
    assert "per_frame" not in data


def test_cli_table_and_missing_file(videos, tmp_path):
    ok = runner.invoke(app, ["eval", videos["mapped"], "--source", videos["source"]])
    assert ok.exit_code == 0
    full = runner.invoke(app, ["eval", videos["noisy"], "--source", videos["source"], "--truth", videos["mapped"]])
    assert full.exit_code == 0
    assert "flicker vs truth" in full.output and "flicker, source" in full.output and "still output" in full.output
    assert "warping error L1, output" in full.output and "E_warp (Lai et al.), output" in full.output
    missing = tmp_path / "gone.mp4"
    result = runner.invoke(app, ["eval", str(missing), "--source", videos["source"]])
    assert result.exit_code != 0
    lines = [ln for ln in result.output.splitlines() if ln.strip()]
    assert len(lines) == 1 and "gone.mp4" in lines[0] and "Traceback" not in result.output


class SquareFaces:
    """A stand-in landmark backend: the 'face' is the bright square of the frame."""

    name = "squares"
    accepts_gray = False

    def detect(self, image):
        ys, xs = np.nonzero(image.mean(axis=2) > 200)
        if len(xs) < 20:
            return []
        return [np.array([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1], np.float64)]

    def landmarks(self, image, box):
        x0, y0, x1, y1 = box
        u = np.linspace(0, 1, 68)
        pts = np.stack([x0 + u * (x1 - x0), y0 + (1 - u) * (y1 - y0)], axis=1)
        pts[36], pts[45] = (x0, (y0 + y1) / 2), (x1, (y0 + y1) / 2)  # "eyes" one box width apart
        return pts.astype(np.float32)


def _square_frame(t: int, shift: int = 0, face: bool = True) -> np.ndarray:
    img = np.full((48, 64, 3), 60, np.uint8)
    if face:
        x = 8 + 2 * t + shift
        img[12:32, x : x + 20] = 240
    return img


def test_faces_through_evaluate_with_a_stand_in_backend(tmp_path, monkeypatch):
    from retarget.faces import backends

    monkeypatch.setattr(backends, "get_backend", lambda name, device="auto": SquareFaces())
    src = _write(tmp_path / "src.mp4", [_square_frame(t) for t in range(8)])
    same = evaluate(EvalConfig(output=src, source=src, faces=True)).scores["faces"]
    assert same["frames"] == 8 and same["landmark_error"] == pytest.approx(0.0, abs=1e-6)
    # the face moved 4 px in a 20 px wide face -> error 0.2; two frames lost their face
    moved = [_square_frame(t, shift=4, face=t not in (2, 5)) for t in range(8)]
    out = _write(tmp_path / "moved.mp4", moved)
    got = evaluate(EvalConfig(output=out, source=src, faces=True)).scores["faces"]
    assert got["frames"] == 6 and got["no_output_face"] == 2 and got["no_source_face"] == 0
    assert got["landmark_error"] == pytest.approx(0.2, abs=0.03)
    assert got["backend"] == "squares"
