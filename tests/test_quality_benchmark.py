"""benchmarks/quality.py: its styles, scores and colour-transfer baseline on synthetic clips."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"
sys.path.insert(0, str(BENCH))

import quality  # noqa: E402
from quality_styles import STYLES, stylise  # noqa: E402


def _moving_clip(t=6, size=48, shift=2):
    """A smooth random texture sliding right by ``shift`` px per frame, uint8 [t, size, size, 3]."""
    import cv2

    rng = np.random.default_rng(0)
    big = cv2.resize(
        rng.integers(0, 256, (12, 12 + 2 * t, 3), dtype=np.uint8),
        (size + shift * t, size),
        interpolation=cv2.INTER_CUBIC,
    )
    return np.stack([big[:, shift * (t - i) : shift * (t - i) + size] for i in range(t)])


@pytest.mark.parametrize("style", sorted(STYLES))
def test_styles_are_pure_functions_of_the_frame(style):
    clip = _moving_clip()
    a = np.stack([stylise(f, style) for f in clip])
    b = np.stack([stylise(f.copy(), style) for f in clip])
    assert a.shape == clip.shape and a.dtype == np.uint8
    assert np.array_equal(a, b)  # deterministic
    assert np.abs(a.astype(int) - clip).mean() > 10  # a visible change of look


def test_score_of_the_truth_is_perfect_and_noise_flickers():
    clip = _moving_clip()
    truth = np.stack([stylise(f, "duotone") for f in clip])
    s = quality.score(truth, truth, clip)
    assert s["psnr"] == 100.0 and s["flicker"] == 0.0
    assert s["ssim"] == pytest.approx(1.0)
    # the truth moves with the clip (2 px per frame): warped along the clip's motion it
    # barely changes (flow and border effects only)
    assert s["warp"] < 0.5
    rng = np.random.default_rng(1)
    noisy = np.clip(truth + rng.normal(0, 8, truth.shape), 0, 255).astype(np.uint8)
    n = quality.score(noisy, truth, clip)
    # independent noise of sigma 8 in both frames of a pair: E|n1 - n2| = 8 sqrt(2) sqrt(2 / pi),
    # seen by the warping error along the motion and by the flicker against the truth alike
    pair_noise = 16 / np.sqrt(np.pi)
    assert n["warp"] - s["warp"] == pytest.approx(pair_noise, rel=0.1)
    assert n["flicker"] == pytest.approx(pair_noise, rel=0.1)
    assert 25 < n["psnr"] < 40
    # a constant offset costs PSNR but adds no flicker
    shifted = np.clip(truth.astype(int) + 10, 0, 255).astype(np.uint8)
    c = quality.score(shifted, truth, clip)
    assert c["flicker"] < 0.5 and c["psnr"] < 30


def _lab_grade(frames):
    """A known global grade, affine per Lab channel: darker, redder, bluer."""
    import cv2

    out = []
    for f in frames:
        lab = cv2.cvtColor(f.astype(np.float32) / 255, cv2.COLOR_RGB2LAB)
        lab = lab * [0.8, 1.0, 1.0] + [8.0, 12.0, -10.0]
        rgb = cv2.cvtColor(lab.astype(np.float32), cv2.COLOR_LAB2RGB)
        out.append(np.clip(np.round(rgb * 255), 0, 255).astype(np.uint8))
    return np.stack(out)


def test_lab_transfer_recovers_a_global_colour_change():
    clip = _moving_clip(t=8)
    other = clip[::-1].copy()  # unpaired: the same content in another order
    out = quality.lab_transfer(clip, _lab_grade(other), clip)
    truth = _lab_grade(clip)
    before = np.abs(clip.astype(int) - truth).mean()
    after = np.abs(out.astype(int) - truth).mean()
    assert before > 10 and after < 0.2 * before


def test_system_specs_reach_model_loss_and_train_options():
    model, loss, train = quality.parse_system("recycle+p_residual=1,recycle=2.5,lr=0.001,npf=16", "tiny", 64)
    assert model.model == "recycle" and model.p_residual and model.npf == 16 and model.size == 64
    assert loss.recycle == 2.5 and train == {"lr": 0.001}
    with pytest.raises(SystemExit):
        quality.parse_system("recycle+nonsense=1", "tiny", 64)
    with pytest.raises(SystemExit):
        quality.parse_system("pix2pix", "tiny", 64)


def test_multi_domain_benchmark_systems_are_checked_before_any_work():
    import multi_domain

    assert multi_domain.parse("pairs:recycle", "tiny", 32) == ("pairs", "recycle")
    assert multi_domain.parse("multi:cyclegan+cls=2", "tiny", 32) == ("multi", "cyclegan+cls=2")
    for bad in ("recycle", "triples:recycle", "multi:recycle+nope=1"):
        with pytest.raises(SystemExit):
            multi_domain.parse(bad, "tiny", 32)
