"""Frame cache, triplet sampler and augmentation of retarget.train.data."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from helpers import write_frames

from retarget.errors import RetargetError
from retarget.train.data import default_load_size, load_domain
from retarget.train.sampler import TripletSampler


def write_manifest(folder: Path, segments: list[int]) -> Path:
    """A two-segment manifest dataset over f0.png... (one frame per entry of ``segments``)."""
    write_frames(folder / "frames", len(segments))
    frames = [{"file": f"frames/f{i}.png", "segment": s, "video": 0, "index": i} for i, s in enumerate(segments)]
    manifest = {
        "format": "retarget-dataset",
        "version": 1,
        "size": 20,
        "align": "face",
        "face": {"backend": "dlib", "margin": 0.3},
        "frames": frames,
    }
    (folder / "manifest.json").write_text(json.dumps(manifest))
    return folder


def test_plain_folder_natural_order_and_triplets(tmp_path):
    d = load_domain(write_frames(tmp_path / "a", 12), 22)
    assert d.frames.shape == (12, 22, 22, 3) and d.frames.dtype == np.uint8
    assert [int(v) for v in d.frames[:, 5, 15, 0]] == [10 * i for i in range(12)]  # f2 before f10
    assert d.info.align == "none"
    s = TripletSampler(d, 3, 16, batch_size=5, seed=1, flip=False)
    x = s.batch(0)
    assert x.shape == (5, 3, 3, 16, 16) and x.dtype == torch.float32
    assert x.min() >= -1 and x.max() <= 1
    red = ((x[:, :, 0, 8, 12] + 1) * 127.5).round() / 10
    assert torch.equal(red[:, 1] - red[:, 0], torch.ones(5)) and torch.equal(red[:, 2] - red[:, 1], torch.ones(5))


def test_triplets_never_cross_segments_and_face_info(tmp_path):
    segs = [0] * 4 + [1] * 2 + [2] * 5  # the 2-frame segment cannot hold a triplet
    d = load_domain(write_manifest(tmp_path / "m", segs), 20)
    assert d.info.align == "face" and d.info.face.margin == 0.3
    assert [len(s) for s in d.segments] == [4, 5]
    s = TripletSampler(d, 3, 20, batch_size=64, seed=0)
    starts = np.concatenate([s.sample(k)[0] for k in range(10)])
    assert set(starts.tolist()) <= {0, 1, 6, 7, 8}
    assert set(starts.tolist()) == {0, 1, 6, 7, 8}  # every valid start is reachable


def test_same_crop_and_flip_for_all_frames_and_determinism(tmp_path):
    d = load_domain(write_frames(tmp_path / "a", 6), 24)
    s = TripletSampler(d, 3, 16, batch_size=32, seed=3)
    x = s.batch(7)
    assert torch.equal(x, s.batch(7))  # a step's draws depend only on the step
    assert not torch.equal(x, s.batch(8))
    green = x[:, :, 1] > 0  # left half of the source image is green
    assert torch.equal(green[:, 0], green[:, 1]) and torch.equal(green[:, 1], green[:, 2])
    _, ys, xs, flips = s.sample(7)
    assert flips.any() and (~flips).any() and len(set(xs.tolist())) > 1
    other = TripletSampler(d, 3, 16, batch_size=32, seed=3, domain=1)
    assert not torch.equal(x, other.batch(7))


def test_ranks_draw_from_disjoint_shares(tmp_path):
    d = load_domain(write_frames(tmp_path / "a", 20), 20)
    r0 = TripletSampler(d, 1, 16, 8, seed=0, rank=0, world=2)
    r1 = TripletSampler(d, 1, 16, 8, seed=0, rank=1, world=2)
    assert set(r0.starts.tolist()).isdisjoint(r1.starts.tolist())
    assert len(r0) + len(r1) == 20


def test_unreadable_images_are_skipped_and_split_segments(tmp_path):
    folder = write_frames(tmp_path / "a", 7)
    (folder / "f3.png").write_bytes(b"not a png")
    d = load_domain(folder, 20)
    assert d.skipped == 1 and d.frames.shape[0] == 6
    assert [len(s) for s in d.segments] == [3, 3]  # no triplet bridges the missing frame


def test_a_corrupt_png_gives_our_warning_naming_it_not_opencvs(tmp_path, capfd):
    folder = write_frames(tmp_path / "a", 9)
    data = (folder / "f3.png").read_bytes()
    (folder / "f3.png").write_bytes(data[: len(data) // 2])  # a copy cut short
    (folder / "f6.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"garbage" * 20)  # a PNG signature, then junk
    capfd.readouterr()
    d = load_domain(folder, 20, workers=2)
    err = capfd.readouterr().err
    assert "WARN" not in err and "ERROR" not in err and "png" not in err.lower()  # OpenCV said nothing
    assert d.skipped == 2 and d.unreadable == ("f3.png", "f6.png")
    assert d.warning() == f"{folder}: skipped 2 unreadable image(s) (f3.png, f6.png)"
    # The mmap cache remembers the names for the next run.
    cached = [load_domain(folder, 20, cache="mmap", cache_path=tmp_path / "c.npy") for _ in range(2)]
    assert [c.unreadable for c in cached] == [("f3.png", "f6.png")] * 2


def test_same_aspect_sizes_share_a_shard_and_other_shapes_keep_theirs(tmp_path):
    folder = write_frames(tmp_path / "a", 4, size=20)  # f0..f3: 20 x 20
    cv2.imwrite(str(folder / "f4.png"), np.full((40, 40, 3), 60, np.uint8))  # square, twice the size
    for i in range(5, 9):  # f5..f8: a 3:4 clip
        cv2.imwrite(str(folder / f"f{i}.png"), np.full((30, 40, 3), 10 * i, np.uint8))
    d = load_domain(folder, 22)
    assert d.resized == 5 and len(d) == 9  # five images of another size than most
    assert [s.frames.shape for s in d.shards] == [(5, 22, 22, 3), (4, 22, 29, 3)]  # no aspect was changed
    assert int(d.clip(4, 1)[0, 10, 10, 0]) == 60 and int(d.clip(5, 1)[0, 10, 10, 0]) == 50
    # the shape change breaks the sequence: f0-f4 and f5-f8 are two segments
    assert [list(s) for s in d.segments] == [[0, 1, 2, 3, 4], [5, 6, 7, 8]]
    with pytest.raises(ValueError, match="several shapes"):
        d.frames
    # windows come from both shapes, each inside its own frame, and triplets stay in one segment
    s = TripletSampler(d, 3, 20, batch_size=64, seed=0, flip=False)
    starts, ys, xs, _ = s.sample(0)
    assert set(starts.tolist()) == {0, 1, 2, 5, 6}
    wide = np.isin(starts, [5, 6])
    assert xs[~wide].max() <= 2 and xs[wide].max() > 2 and xs[wide].max() <= 9 and ys.max() <= 2
    x = s.batch(0)
    red = ((x[:, :, 0, 5, 5] + 1) * 127.5).round()
    assert torch.equal(red[wide, 1] - red[wide, 0], torch.full((int(wide.sum()),), 10.0))


def test_wide_frames_keep_their_aspect_and_crop_anywhere(tmp_path):
    folder = tmp_path / "wide"
    folder.mkdir()
    for i in range(3):
        img = np.zeros((20, 50, 3), np.uint8)
        img[:, :, 2] = np.linspace(0, 250, 50, dtype=np.uint8)[None]  # red ramp from left to right
        cv2.imwrite(str(folder / f"{i}.png"), img)
    d = load_domain(folder, 24)
    assert d.frames.shape == (3, 24, 60, 3)
    s = TripletSampler(d, 3, 16, batch_size=64, seed=0, flip=False)
    _, ys, xs, _ = s.sample(0)
    assert ys.max() <= 8 and xs.max() > 8 and xs.max() <= 44


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda p: p / "missing", "not found"),
        (lambda p: (p / "empty").mkdir() or p / "empty", "no manifest.json and no images"),
        (lambda p: write_frames(p / "two", 2), "at least 3 consecutive frames"),
    ],
)
def test_bad_input_is_one_line(tmp_path, make, message):
    with pytest.raises(RetargetError) as err:
        load_domain(make(tmp_path), 20)
    assert message in str(err.value) and "\n" not in str(err.value)


def test_all_unreadable(tmp_path):
    folder = tmp_path / "bad"
    folder.mkdir()
    for i in range(3):
        (folder / f"{i}.png").write_bytes(b"x")
    with pytest.raises(RetargetError, match="none of its 3 images could be read"):
        load_domain(folder, 20)


def test_single_frames_suffice_for_cyclegan(tmp_path):
    d = load_domain(write_frames(tmp_path / "one", 1), 20, frames_needed=1)
    assert TripletSampler(d, 1, 16, 2, seed=0).batch(0).shape == (2, 1, 3, 16, 16)


def test_mmap_cache_is_built_once_and_reused(tmp_path):
    folder = write_frames(tmp_path / "a", 5)
    cache = tmp_path / "run" / "cache_A.npy"
    d1 = load_domain(folder, 20, cache="mmap", cache_path=cache)
    assert isinstance(d1.frames, np.memmap) and cache.exists()
    mtime = cache.stat().st_mtime_ns
    d2 = load_domain(folder, 20, cache="mmap", cache_path=cache)
    assert cache.stat().st_mtime_ns == mtime
    assert np.array_equal(np.asarray(d1.frames), np.asarray(d2.frames))
    assert np.array_equal(np.asarray(d2.frames), load_domain(folder, 20).frames)
    d3 = load_domain(folder, 24, cache="mmap", cache_path=cache)  # another size rebuilds
    assert d3.frames.shape[1] == 24


def test_default_load_size():
    assert default_load_size(128) == 143 and default_load_size(32, 40) == 40


def test_render_info_records_the_extract_crop_and_cut_threshold(tmp_path):
    from helpers import make_video

    from retarget.config import ExtractConfig
    from retarget.dataset.extract import extract
    from retarget.train.data import load_domain

    video = make_video(tmp_path / "v.mp4", frames=8, size=(96, 64), fps=25)
    extract(
        ExtractConfig(
            videos=(str(video),), output=str(tmp_path / "ds"), size=32, crop=(8, 4, 48, 48), cut_threshold=0.3
        )
    )
    info = load_domain(tmp_path / "ds", 36).info
    assert info.crop == (8, 4, 48, 48) and info.cut_threshold == 0.3


def _moving_texture(folder: Path, frames: int = 5, shift: int = 2, size: tuple[int, int] = (40, 56)) -> Path:
    """A smooth random texture moving ``shift`` px to the right per frame (frame t = texture at x - t*shift)."""
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    h, w = size
    tex = cv2.GaussianBlur(rng.integers(0, 256, (h, w + shift * frames, 3)).astype(np.uint8), (0, 0), 2.0)
    tex = cv2.normalize(tex, None, 0, 255, cv2.NORM_MINMAX)
    for t in range(frames):
        x0 = shift * (frames - t)
        cv2.imwrite(str(folder / f"f{t}.png"), tex[:, x0 : x0 + w])
    return folder


def test_motion_is_computed_once_per_pair_and_recovers_a_known_shift(tmp_path):
    d = load_domain(_moving_texture(tmp_path / "m"), 40, motion=True)
    shard = d.shards[0]
    assert d.has_motion and shard.flow.shape == (5, 40, 56, 2) and shard.flow.dtype == np.float16
    assert not shard.valid[0].any() and not shard.flow[0].any()  # the first frame has no predecessor
    inner = (slice(6, -6), slice(8, -8))
    for t in range(1, 5):
        v = shard.valid[t][inner].astype(bool)
        assert v.mean() > 0.9
        # frame t's pixel x came from x - 2 in frame t - 1: the backward flow is (-2, 0)
        f = shard.flow[t][inner].astype(np.float32)
        assert np.abs(f[v][:, 0] + 2).mean() < 0.3 and np.abs(f[v][:, 1]).mean() < 0.3
    assert not load_domain(tmp_path / "m", 40).has_motion  # only when asked


@pytest.mark.parametrize("flip", [False, True])
def test_sampled_motion_warps_one_real_frame_onto_the_next(tmp_path, flip):
    from retarget.nn.warp_loss import warp_consistency
    from retarget.train.sampler import to_device

    d = load_domain(_moving_texture(tmp_path / "m", frames=6), 40, motion=True)
    s = TripletSampler(d, 3, 24, batch_size=8, seed=2, flip=True)
    raw = s.raw(0, motion=True)
    flips = s.sample(0)[3]
    assert raw["flow"].shape == (8, 2, 24, 24, 2) and raw["valid"].shape == (8, 2, 24, 24)
    batch = to_device({"A": raw}, torch.device("cpu"))
    pick = flips if flip else ~flips
    assert pick.any()
    x, flow, valid = batch["A"][pick], batch["A.flow"][pick], batch["A.valid"][pick]
    u = flow[..., 0][valid[:, :, 0] > 0]
    assert (u.mean().item() > 1.5) if flip else (u.mean().item() < -1.5)  # mirrored motion points the other way
    for t in range(2):
        moved = warp_consistency(x[:, t], x[:, t + 1], flow[:, t], valid[:, t]).item()
        still = (x[:, t + 1] - x[:, t]).abs().mean().item()
        assert moved < 0.25 * still  # the flow explains the change between real frames
    # pixels whose flow leaves the window are not trusted: the two columns the motion comes
    # from (left, or right when mirrored) had no pixel inside the previous frame's window
    edge = valid[:, :, 0, :, -2:] if flip else valid[:, :, 0, :, :2]
    assert edge.sum() == 0 and valid[:, :, 0, :, 4:-4].mean() > 0.8


def test_mmap_cache_keeps_the_motion(tmp_path):
    folder = _moving_texture(tmp_path / "m")
    cache = tmp_path / "run" / "cache_A.npy"
    d1 = load_domain(folder, 40, cache="mmap", cache_path=cache, motion=True)
    assert cache.with_suffix(".flow.npy").exists() and isinstance(d1.shards[0].flow, np.memmap)
    mtime = cache.stat().st_mtime_ns
    d2 = load_domain(folder, 40, cache="mmap", cache_path=cache, motion=True)
    assert cache.stat().st_mtime_ns == mtime
    mem = load_domain(folder, 40, motion=True)
    assert np.array_equal(np.asarray(d2.shards[0].flow), mem.shards[0].flow)
    assert np.array_equal(np.asarray(d2.shards[0].valid), mem.shards[0].valid)
