"""render/stabilize: flicker is removed along the source's motion, motion is not smeared,
the state resets at cuts and missing crops, and strength 0 changes nothing."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from retarget.render.stabilize import Stabilizer, stabilize_frames

SIZE = 64


def _texture(seed: int, size: int = SIZE, blur: float = 2.0) -> np.ndarray:
    """A smooth random colour texture, size x size x 3 uint8 (flow can track it)."""
    rng = np.random.default_rng(seed)
    big = rng.uniform(0, 255, (size + 16, size + 16, 3)).astype(np.float32)
    big = cv2.GaussianBlur(big, (0, 0), blur)
    big = (big - big.mean()) / (big.std() + 1e-6) * 50 + 128
    return np.clip(big[8:-8, 8:-8], 0, 255).astype(np.uint8)


def _translate(src: np.ndarray) -> np.ndarray:
    """A fixed, known "translation": swap channels and invert one."""
    out = src[..., ::-1].copy()
    out[..., 1] = 255 - out[..., 1]
    return out


def _noisy(image: np.ndarray, rng: np.random.Generator, sigma: float = 8.0) -> np.ndarray:
    """Per-pixel noise plus a per-frame colour shift: flicker of a per-frame translation."""
    noise = rng.normal(0, sigma, image.shape) + rng.normal(0, sigma / 2, 3)
    return np.clip(image + noise + 0.5, 0, 255).astype(np.uint8)


def _moving_clip(frames: int = 16, step: int = 2) -> list[np.ndarray]:
    """A static textured background with a textured square moving right by ``step`` px/frame."""
    bg, fg = _texture(1), _texture(2, 20, 1.5)
    clip = []
    for t in range(frames):
        img = bg.copy()
        x = 6 + step * t
        img[20:40, x : x + 20] = fg
        clip.append(img)
    return clip


def _error(a: list[np.ndarray], b: list[np.ndarray], sl=slice(None)) -> float:
    return float(np.mean([np.abs(x.astype(np.float32) - y)[sl].mean() for x, y in zip(a, b)]))


def test_static_scene_with_noisy_outputs_becomes_steady():
    rng = np.random.default_rng(0)
    src = _texture(0)
    sources = [np.clip(src + rng.normal(0, 1.0, src.shape) + 0.5, 0, 255).astype(np.uint8) for _ in range(30)]
    truth = _translate(src)
    outputs = [_noisy(truth, rng) for _ in sources]
    stab = stabilize_frames(outputs, sources, 1.0)
    # temporal std of each pixel over the second half (after the history filled up)
    std_before = np.stack(outputs[15:]).astype(np.float32).std(0).mean()
    std_after = np.stack(stab[15:]).astype(np.float32).std(0).mean()
    assert std_after < 0.4 * std_before
    # steadier and closer to the truth, with no colour drift away from it
    assert _error(stab[15:], [truth] * 15) < 0.6 * _error(outputs[15:], [truth] * 15)
    # (the outputs' own mean, not the truth's: clipping at 0 and 255 moves it a little)
    assert abs(float(np.mean(stab, dtype=np.float64)) - float(np.mean(outputs, dtype=np.float64))) < 0.5
    # a half strength lies in between
    half = stabilize_frames(outputs, sources, 0.5)
    std_half = np.stack(half[15:]).astype(np.float32).std(0).mean()
    assert std_after < std_half < std_before


def test_moving_pattern_is_not_smeared():
    sources = _moving_clip()
    truth = [_translate(s) for s in sources]
    # clean outputs: whatever the stabilizer changes is error it made
    clean = stabilize_frames(truth, sources, 1.0)
    assert _error(clean, truth) < 2.0
    # the moving square and its trail, where smearing would show
    region = (slice(16, 44), slice(4, 64))
    assert _error(clean, truth, region) < 4.0
    # noisy outputs: the error against the true moving pattern stays small (below the
    # unstabilized error: the noise is averaged along the motion, the edges are not smeared)
    rng = np.random.default_rng(1)
    outputs = [_noisy(t, rng) for t in truth]
    stab = stabilize_frames(outputs, sources, 1.0)
    assert _error(stab, truth, region) < _error(outputs, truth, region)
    assert _error(stab, truth) < 0.8 * _error(outputs, truth)
    # blending with the previous output without the motion (what a naive temporal filter
    # does) smears the square; the stabilizer's error there is far below it
    naive = [truth[0]] + [
        ((0.9 * truth[t - 1].astype(np.float32) + 0.1 * truth[t]) + 0.5).astype(np.uint8) for t in range(1, len(truth))
    ]
    assert _error(clean, truth, region) < 0.3 * _error(naive, truth, region)


def test_a_cut_resets_the_state():
    rng = np.random.default_rng(2)
    a, b = _texture(3), _texture(4)
    b[..., 0] //= 4  # another scene, in other colours ...
    b[16:48, 16:48] = a[16:48, 16:48]  # ... with the same content in the middle
    sources = [a] * 8 + [b] * 8
    outputs = [_noisy(_translate(s), rng) for s in sources]
    outputs[8:] = [np.clip(o.astype(int) + 60, 0, 255).astype(np.uint8) for o in outputs[8:]]  # new look
    stab = stabilize_frames(outputs, sources, 1.0)
    assert np.array_equal(stab[8], outputs[8])  # nothing of the first shot
    assert not np.array_equal(stab[7], outputs[7]) and not np.array_equal(stab[9], outputs[9])
    # without cut detection the shared middle would carry the first shot over
    carried = stabilize_frames(outputs, sources, 1.0, cut_threshold=None)
    assert np.abs(carried[8].astype(int) - outputs[8])[20:44, 20:44].mean() > 20


def test_missing_crop_and_explicit_reset_start_over():
    rng = np.random.default_rng(3)
    src = _texture(5)
    outs = [_noisy(_translate(src), rng) for _ in range(6)]
    stab = Stabilizer(1.0)
    results = [stab(outs[0], src), stab(outs[1], src)]
    assert not np.array_equal(results[1], outs[1])
    assert stab.prepare(None) is None  # no face on this frame
    assert np.array_equal(stab(outs[2], src), outs[2])  # first frame after it passes
    assert not np.array_equal(stab(outs[3], src), outs[3])
    assert np.array_equal(stab(outs[4], src, reset=True), outs[4])
    # a crop of another size (a new face size) starts over too
    assert np.array_equal(stab(outs[5][:32, :32].copy(), src[:32, :32].copy()), outs[5][:32, :32])


def test_prepare_may_run_ahead_of_blend():
    """The render pipeline prepares frames batches ahead of blending them."""
    rng = np.random.default_rng(4)
    sources = _moving_clip(10)
    outputs = [_noisy(_translate(s), rng) for s in sources]
    stab = Stabilizer(0.8)
    links = [stab.prepare(s, reset=(i == 5)) for i, s in enumerate(sources)]
    ahead = [stab.blend(o, link) for o, link in zip(outputs, links)]
    seq = Stabilizer(0.8)
    inline = [seq(o, s, reset=(i == 5)) for i, (o, s) in enumerate(zip(outputs, sources))]
    assert all(np.array_equal(x, y) for x, y in zip(ahead, inline))


def test_zero_strength_changes_nothing_and_bounds_are_checked():
    rng = np.random.default_rng(5)
    sources = _moving_clip(5)
    outputs = [_noisy(_translate(s), rng) for s in sources]
    same = stabilize_frames(outputs, sources, 0.0)
    assert all(np.array_equal(x, y) for x, y in zip(same, outputs))
    for bad in (-0.1, 1.5, float("nan")):
        with pytest.raises(ValueError, match="strength"):
            Stabilizer(bad)
    with pytest.raises(ValueError, match="size"):
        stabilize_frames(outputs[:1], [sources[0][:32]], 1.0)
