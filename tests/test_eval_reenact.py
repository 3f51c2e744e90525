"""Self-reenactment scores (retarget.eval.reenact) on synthetic frames with landmarks passed in."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from retarget.eval.faces import FaceComparer, FaceComparison
from retarget.eval.metrics import PSNR_CAP, ssim
from retarget.eval.metrics import ssim_map
from retarget.eval.reenact import ReenactScorer, face_region, region_psnr, region_ssim, score_videos

H, W = 96, 128


def _points(cx: float = 64.0, cy: float = 48.0, r: float = 30.0) -> np.ndarray:
    """68 points: the outline (0-26) on a circle of radius ``r``, the rest inside; eyes 36 and 45 apart."""
    angles = np.linspace(0.0, 2 * np.pi, 27, endpoint=False)
    pts = np.zeros((68, 2))
    pts[:27] = np.stack([cx + r * np.cos(angles), cy + r * np.sin(angles)], 1)
    rng = np.random.default_rng(1)
    pts[27:] = (cx, cy) + rng.uniform(-r / 2, r / 2, (41, 2))
    pts[36], pts[45] = (cx - r / 2, cy - r / 4), (cx + r / 2, cy - r / 4)
    return pts


def _texture(shift: int = 0, seed: int = 0) -> np.ndarray:
    """A smooth random picture, ``H x W x 3`` uint8, moved ``shift`` px to the right."""
    rng = np.random.default_rng(seed)
    small = rng.uniform(0, 255, (H // 4, (W + 64) // 4, 3)).astype(np.float32)
    big = cv2.GaussianBlur(np.kron(small, np.ones((4, 4, 1), np.float32)), (0, 0), 1.5)
    return np.ascontiguousarray(big[:, 32 - shift : 32 - shift + W]).round().astype(np.uint8)


def _face(points: np.ndarray, out_points: np.ndarray | None) -> FaceComparison:
    from retarget.eval.faces import landmark_error

    box = np.array([*points[:27].min(0), *points[:27].max(0)])
    if out_points is None:
        return FaceComparison(True, False, None, box, points)
    return FaceComparison(True, True, landmark_error(points, out_points), box, points, box, out_points)


def test_face_region_is_the_filled_hull_of_the_outline():
    region = face_region(_points(r=30.0), (H, W, 3))
    assert region.shape == (H, W) and region.dtype == bool
    assert region[48, 64] and not region[2, 2] and not region[48, 64 + 32]
    assert region.sum() == pytest.approx(np.pi * 30.0**2, rel=0.05)  # 27 points on a circle: nearly its area


def test_identical_frames_score_the_cap_and_one():
    img, region = _texture(), face_region(_points(), (H, W))
    assert region_psnr(img, img, region) == PSNR_CAP
    assert region_ssim(img, img, region) == pytest.approx(1.0, abs=1e-6)
    assert np.isnan(region_psnr(img, img, np.zeros((H, W), bool)))


def test_a_shifted_picture_scores_lower_and_only_the_region_counts():
    truth, region = _texture(), face_region(_points(), (H, W))
    shifted = _texture(shift=3)
    assert 10.0 < region_psnr(shifted, truth, region) < 40.0
    assert region_ssim(shifted, truth, region) < 0.9
    outside = truth.copy()
    outside[~region] = 0  # changes outside the face region leave its scores alone
    assert region_psnr(outside, truth, region) == PSNR_CAP
    assert region_ssim(outside, truth, region) < 1.0  # the window reaches a few px over the hull's edge
    inner = face_region(_points(r=20.0), (H, W))
    assert region_ssim(outside, truth, inner) == pytest.approx(1.0, abs=1e-6)


def test_the_ssim_map_agrees_with_the_frame_ssim():
    a, b = _texture(seed=0), _texture(shift=2, seed=0)
    inner = np.zeros((H, W), bool)
    inner[5:-5, 5:-5] = True  # metrics.ssim drops the window's radius at the border
    assert region_ssim(a, b, inner) == pytest.approx(ssim(a, b), abs=1e-5)
    assert ssim_map(a, b).shape == (H, W)
    box = np.zeros((H, W), bool)
    box[30:60, 40:90] = True  # the cropped computation equals the whole map's values
    assert region_ssim(a, b, box) == pytest.approx(float(ssim_map(a, b)[box].mean()), abs=1e-5)


def _run(outputs: list[np.ndarray], truths: list[np.ndarray], faces: list[FaceComparison]):
    scorer = ReenactScorer()
    for o, t, f in zip(outputs, truths, faces):
        scorer.add(o, t, f)
    return scorer.summary()


def test_the_truth_as_its_own_output_scores_perfectly():
    truths = [_texture(shift=s) for s in range(0, 8, 2)]
    pts = _points()
    s = _run(truths, truths, [_face(pts, pts)] * len(truths))
    assert (s.frames, s.truth_faces, s.found, s.pairs) == (4, 4, 4, 3)
    assert s.psnr == PSNR_CAP and s.ssim == pytest.approx(1.0, abs=1e-6) and s.landmark == 0.0
    assert s.sharpness == pytest.approx(1.0) and s.warp_ratio == pytest.approx(1.0)
    assert s.warp_truth is not None and s.warp_truth >= 0.0
    assert s.to_dict()["found_share"] == 1.0


def test_errors_lower_the_scores_and_missing_faces_are_counted():
    truths = [_texture(shift=s) for s in range(0, 8, 2)]
    outputs = [_texture(shift=s, seed=5) for s in (0, 4, 2, 6)]  # another picture, jumping about
    pts = _points()
    moved = pts + (3.0, 0.0)  # 3 px of an inter-ocular distance of 30 px: 10%
    faces = [_face(pts, moved), _face(pts, None), _face(pts, moved), FaceComparison(False, False, None)]
    s = _run(outputs, truths, faces)
    assert (s.frames, s.truth_faces, s.found) == (4, 3, 2)
    assert s.landmark == pytest.approx(10.0)
    assert s.psnr < 30.0 and s.ssim < 0.5
    assert s.warp_ratio is not None and s.warp_ratio > 1.5
    assert s.to_dict()["found_share"] == pytest.approx(2 / 3)


def test_a_blurred_output_is_less_sharp():
    truth = _texture()
    blurred = cv2.GaussianBlur(truth, (0, 0), 2.0)
    pts = _points()
    s = _run([blurred], [truth], [_face(pts, pts)])
    assert s.sharpness is not None and s.sharpness < 0.5
    assert s.warp_ratio is None and s.pairs == 0  # one frame: no pair


def test_an_empty_scorer_and_bad_input():
    s = ReenactScorer().summary()
    assert s.frames == 0 and s.psnr is None and s.warp_ratio is None and s.to_dict()["found_share"] is None
    with pytest.raises(ValueError, match="no face given"):
        ReenactScorer().add(_texture(), _texture())
    with pytest.raises(ValueError, match="one shape"):
        ReenactScorer().add(_texture()[:10], _texture(), FaceComparison(False, False, None))


class _FixedFace:
    """A fake backend: one face at a fixed place of a 64 x 48 frame, fixed landmarks."""

    name = "fake"
    accepts_gray = False

    def __init__(self, points: np.ndarray) -> None:
        self.points = points

    def detect(self, image):
        scale = image.shape[1] / 64.0
        return [np.array([12.0, 4.0, 52.0, 40.0]) * scale]

    def landmarks(self, image, box):
        return self.points


def test_score_videos_reads_both_videos_frame_by_frame(tmp_path):
    from helpers import make_video

    truth = make_video(tmp_path / "truth.mp4", frames=6, size=(64, 48))
    longer = make_video(tmp_path / "longer.mp4", frames=8, size=(64, 48))
    pts = _points(cx=32.0, cy=22.0, r=16.0)
    s, counts = score_videos(truth, truth, FaceComparer(_FixedFace(pts)), flow_preset="ultrafast")
    assert counts == {"output": 6, "truth": 6} and s.frames == 6 and s.found == 6
    assert s.psnr == PSNR_CAP and s.landmark == 0.0 and s.warp_ratio == pytest.approx(1.0)
    s, counts = score_videos(longer, truth, FaceComparer(_FixedFace(pts)), flow_preset="ultrafast")
    assert counts == {"output": 8, "truth": 6} and s.frames == 6
