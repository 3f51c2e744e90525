"""The face enhancer: network, degradation, training from a face dataset, its folder, render --enhancer."""

from __future__ import annotations

import math
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from retarget.config import EnhancerConfig, FaceConfig, RenderConfig
from retarget.dataset.manifest import Dataset, FrameRecord, write_manifest
from retarget.errors import RetargetError
from retarget.nn.enhancer import FaceEnhancer, degrade, gaussian_blur
from retarget.run.enhancer import load_enhancer, save_enhancer
from retarget.run.info import DataInfo


def _pattern(seed: int, size: int) -> np.ndarray:
    """A sharp picture: random axis-aligned rectangles of random colours (edges bilinear cannot restore)."""
    rng = np.random.default_rng(seed)
    img = np.full((size, size, 3), 128, np.uint8)
    for _ in range(12):
        x0, y0 = rng.integers(0, size - 4, 2)
        w, h = rng.integers(3, size // 3, 2)
        img[y0 : y0 + h, x0 : x0 + w] = rng.integers(0, 256, 3)
    return img


def face_dataset(folder: Path, n: int = 12, size: int = 64, align: str = "face", margin: float = 0.4) -> Path:
    """A dataset folder with a manifest saying ``align`` faces of ``size`` px (the images are patterns)."""
    (folder / "frames").mkdir(parents=True)
    frames = []
    for i in range(n):
        name = f"frames/{i:04d}.png"
        cv2.imwrite(str(folder / name), _pattern(i, size)[:, :, ::-1])
        frames.append(FrameRecord(file=name, segment=0, index=i))
    face = FaceConfig(margin=margin) if align == "face" else None
    write_manifest(Dataset(folder, size, align, face, frames))
    return folder


@pytest.mark.kernels
def test_an_untrained_enhancer_is_bilinear_upsampling():
    net = FaceEnhancer(scale=4, width=8, blocks=2).eval()
    x = torch.rand(2, 3, 12, 16) * 2 - 1
    with torch.no_grad():
        y = net(x)
    assert y.shape == (2, 3, 48, 64)
    # the zeroed tail adds 0.0 to the bilinear base (allclose's 1e-5 relative: room for last bits only)
    assert torch.allclose(y, F.interpolate(x, scale_factor=4, mode="bilinear", align_corners=False))
    with pytest.raises(ValueError, match="power of two"):
        FaceEnhancer(scale=3)


def test_gaussian_blur_keeps_the_mean_and_spreads_with_sigma_per_image():
    x = torch.zeros(3, 1, 21, 21)
    x[:, :, 10, 10] = 1.0
    y = gaussian_blur(x, torch.tensor([0.0, 1.0, 2.0]))
    assert torch.equal(y[0], x[0])  # sigma 0: untouched
    assert torch.allclose(y.sum((1, 2, 3)), torch.ones(3), atol=1e-5)
    assert y[1, 0, 10, 10] > y[2, 0, 10, 10] > 0 and y[2, 0, 10, 14] > y[1, 0, 10, 14]
    assert torch.allclose(y[2, 0], y[2, 0].T, atol=1e-6)  # the same blur along both axes


def test_degrade_shrinks_by_the_scale_and_refuses_other_sides():
    gen = torch.Generator().manual_seed(0)
    hi = torch.rand(4, 3, 32, 32) * 2 - 1
    lo = degrade(hi, 4, blur=0.0, noise=0.0, generator=gen)
    assert lo.shape == (4, 3, 8, 8) and torch.allclose(lo, F.avg_pool2d(hi, 4))
    noisy = degrade(hi, 4, blur=1.5, noise=0.05, generator=gen)
    assert noisy.shape == lo.shape and not torch.allclose(noisy, lo)
    with pytest.raises(ValueError, match="multiples of the scale"):
        degrade(torch.zeros(1, 3, 30, 32), 4, 1.0, 0.0)


def _train(tmp_path: Path, data: Path, **kw):
    from retarget.train.enhancer import train_enhancer

    base = dict(data=str(data), out=str(tmp_path / "enh"), scale=4, width=16, blocks=2, steps=150, time_limit=None)
    base.update(batch_size=4, patch=32, blur=0.5, noise=0.0, device="cpu", amp="off")
    base.update(kw)
    return train_enhancer(EnhancerConfig(**base))


def test_training_restores_edges_that_bilinear_upsampling_loses(tmp_path):
    from retarget.atomic import _HOST
    from test_atomic import _dead_pid

    torch.set_num_threads(1)
    stale = tmp_path / f".enh.{_dead_pid()}-{_HOST}.ab_cd123.tmp"  # what a kill -9 mid-save leaves
    (stale / "x").mkdir(parents=True)
    res = _train(tmp_path, face_dataset(tmp_path / "faces"), steps=400, lr=1e-3)
    assert not stale.exists()
    assert res.steps == 400 and res.out == tmp_path / "enh"
    assert res.psnr > res.psnr_bilinear + 0.8  # the known transform (4x shrink) is partly undone
    enh = load_enhancer(res.out)
    assert enh.input_size == 16 and enh.steps == 400 and enh.data.face == FaceConfig()
    assert enh.scores["psnr"] == pytest.approx(res.psnr)
    # the loaded network is the trained one: the same output as the score it saved
    from retarget.train.enhancer import score

    assert score(enh.net, torch.zeros(1, 3, 64, 64, dtype=torch.uint8) + 100, enh.config, torch.device("cpu"))[0] > 30
    assert (res.out / "config.json").is_file()


def test_training_refuses_other_data_and_an_existing_folder_in_one_line(tmp_path):
    plain = face_dataset(tmp_path / "plain", n=2, align="none")
    odd = face_dataset(tmp_path / "odd", n=2, size=34)
    faces = face_dataset(tmp_path / "faces", n=2)
    (tmp_path / "enh").mkdir()
    cases = [
        (dict(data=str(plain)), "not a face dataset"),
        (dict(data=str(odd)), "do not divide by --scale 4"),
        (dict(data=str(faces), patch=96), "--patch 96"),
        (dict(data=str(faces), scale=3), "--scale 3"),
        (dict(data=str(tmp_path / "nowhere")), "not found"),
        (dict(data=str(faces)), "already exists"),
    ]
    for kw, message in cases:
        with pytest.raises(RetargetError, match=message) as err:
            _train(tmp_path, **kw)
        assert "\n" not in str(err.value)


def test_an_enhancer_folder_is_written_whole_or_not_at_all(tmp_path, monkeypatch):
    import retarget.run.netfolder as store

    net = FaceEnhancer(4, 8, 1)
    cfg = EnhancerConfig(data="d", width=8, blocks=1)
    data = DataInfo(align="face", size=64, face=FaceConfig())

    def broken(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(store, "save_file", broken)
    with pytest.raises(OSError):
        save_enhancer(tmp_path / "enh", net, cfg, data, 3, {})
    assert not (tmp_path / "enh").exists() and not list(tmp_path.iterdir())
    monkeypatch.undo()
    save_enhancer(tmp_path / "enh", net, cfg, data, 3, {"psnr": 30.0})
    with pytest.raises(FileExistsError):
        save_enhancer(tmp_path / "enh", net, cfg, data, 4, {})
    assert load_enhancer(tmp_path / "enh").steps == 3
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "enhancer.safetensors").write_bytes(b"not safetensors")
    for path, message in ((tmp_path / "bad", "not a readable"), (tmp_path / "none", "not found")):
        with pytest.raises(RetargetError, match=message):
            load_enhancer(path)


def test_the_enhanced_face_is_pasted_where_the_small_one_would_be():
    from retarget.faces.align import crop_matrix, template_points, warp_crop
    from retarget.render.compose import face_paste

    size, k = 32, 4
    # smooth content: the two upsampling paths (S -> frame, S -> 4S -> frame) then agree
    frame = cv2.GaussianBlur(cv2.resize(_pattern(5, 60), (120, 100), interpolation=cv2.INTER_NEAREST), (0, 0), 4)
    landmarks = (template_points(50, 0.0) + [35, 25]).astype(np.float32)
    matrix = crop_matrix(landmarks, size, 0.4)
    crop = 255 - warp_crop(frame, matrix, size)  # a "translation"
    cfg = RenderConfig(input="i", output="o", color_match="none")
    small = face_paste(cfg)(frame, crop, matrix, landmarks)
    larger = [cv2.resize(c, (k * size, k * size), interpolation=cv2.INTER_LINEAR) for c in [crop]]
    big = face_paste(cfg, lambda crops: larger)(frame, crop, matrix, landmarks)
    changed = np.abs(small.astype(int) - frame.astype(int)).max(2) > 0
    changed_big = np.abs(big.astype(int) - frame.astype(int)).max(2) > 0
    assert changed.mean() > 0.05
    # the same region changes (up to the soft edge: a crop pixel is 2.8 frame pixels at S, 0.7 at 4S),
    # with the same picture
    near = cv2.dilate(changed.astype(np.uint8), np.ones((5, 5), np.uint8)).astype(bool)
    inner = cv2.erode(changed.astype(np.uint8), np.ones((7, 7), np.uint8)).astype(bool)
    assert not changed_big[~near].any() and changed_big[inner].mean() > 0.9 and inner.mean() > 0.03
    core = cv2.erode(changed.astype(np.uint8), np.ones((17, 17), np.uint8)).astype(bool)  # inside the feather
    assert core.mean() > 0.05 and np.abs(big.astype(int) - small.astype(int))[core].mean() < 8
    # the larger crop pasted as if the matrix were made for its side lands elsewhere
    from retarget.faces.paste import paste_back

    wrong = paste_back(frame, larger[0], matrix, landmarks, color_match="none")
    assert np.abs(wrong.astype(int) - small.astype(int))[core].mean() > 25


def _enhancer(tmp_path: Path, size: int, margin: float = 0.4) -> Path:
    data = DataInfo(align="face", size=size, face=FaceConfig(margin=margin))
    return save_enhancer(
        tmp_path / f"enh{size}_{margin}", FaceEnhancer(4, 8, 1), EnhancerConfig("d", width=8, blocks=1), data, 1, {}
    )


def test_render_refuses_an_enhancer_it_cannot_use_in_one_line(tmp_path, monkeypatch):
    from helpers import make_video

    import retarget.faces.aligner as aligner
    from test_render import SIZE, _render

    class NoFace:
        def __init__(self, cfg, size, backend=None):
            pass

        def __call__(self, image, time):
            return None

        def reset(self):
            pass

    monkeypatch.setattr(aligner, "FaceAligner", NoFace)
    models = tmp_path / "models"
    models.mkdir()
    from retarget.config import model_preset, to_dict
    from retarget.nn.networks import build_generator
    from retarget.run.checkpoint import save_weights

    cfg = model_preset("tiny", size=SIZE)
    nets = {"G_AB": build_generator(cfg), "G_BA": build_generator(cfg)}
    data = {
        "A": {"align": "none", "size": SIZE, "face": None, "name": "a"},
        "B": {"align": "face", "size": SIZE, "face": to_dict(FaceConfig()), "name": "b"},
    }
    save_weights(models / "weights.safetensors", nets, cfg, step=0, data=data)
    src = make_video(tmp_path / "in.mp4", frames=3, size=(48, 32))
    good = _enhancer(tmp_path, 4 * SIZE)
    cases = [
        (dict(enhancer=str(good)), r"has an effect with --align face only \(this is --align none\)"),
        (dict(enhancer=str(good), direction="b2a", output_size="model"), "--output-size model"),
        (dict(enhancer=str(_enhancer(tmp_path, 2 * SIZE)), direction="b2a"), "learnt 16 px faces"),
        (dict(enhancer=str(_enhancer(tmp_path, 4 * SIZE, 0.2)), direction="b2a"), "--margin 0.2"),
        (dict(enhancer=str(tmp_path / "none"), direction="b2a"), "enhancer not found"),
    ]
    for i, (kw, message) in enumerate(cases):
        with pytest.raises(RetargetError, match=message) as err:
            _render(src, tmp_path / f"o{i}.mp4", models, **kw)
        assert "\n" not in str(err.value) and not (tmp_path / f"o{i}.mp4").exists()
    # a usable enhancer passes every check; the made-up video has no face, which is the one refusal left
    with pytest.raises(RetargetError, match="no face found in any frame"):
        _render(src, tmp_path / "ok.mp4", models, enhancer=str(good), direction="b2a")


def test_the_blur_before_the_enhancer_removes_a_checkerboard_and_keeps_the_rest():
    from retarget.nn.enhancer import PreBlur

    yy, xx = torch.meshgrid(torch.arange(32), torch.arange(32), indexing="ij")
    board = ((yy + xx) % 2 * 2 - 1).float() * 0.2  # +-0.2 at the finest period
    ramp = xx.float() / 31 - 0.5  # a smooth gradient
    x = (ramp + board).expand(1, 3, 32, 32)
    out = PreBlur(torch.nn.Identity(), 1.0)(x)
    inner = (slice(None), slice(None), slice(4, -4), slice(4, -4))
    assert (out - ramp)[inner].abs().max() < 0.05  # the pattern is gone, the ramp stays
    assert torch.equal(PreBlur(torch.nn.Identity(), 0.0)(x), x)


@pytest.mark.kernels
def test_training_and_the_enhancer_under_cpu_autocast_bf16(tmp_path):
    torch.set_num_threads(1)
    data = face_dataset(tmp_path / "faces", n=4)
    res = _train(tmp_path, data, steps=60, lr=1e-3, amp="bf16")
    assert res.precision == "bf16" and math.isfinite(res.psnr) and res.psnr > res.psnr_bilinear - 0.5
    net = load_enhancer(res.out).net
    x = torch.rand(2, 3, 16, 16) * 2 - 1
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        low = net(x).float()
    with torch.no_grad():
        full = net(x)
    assert low.dtype == torch.float32 and (low - full).abs().max() < 0.05  # bf16 keeps about 3 digits
