"""The transposed convolutions' checkerboard filtered out of whole-frame renders (retarget/render/degrid.py)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from helpers import make_video
from retarget.config import RenderConfig, model_preset
from retarget.errors import RetargetError
from retarget.nn.networks import build_generator
from retarget.render.degrid import Degrid, degrid, wants_degrid
from retarget.render.plan import plan_render
from retarget.run.checkpoint import save_weights

SIZE = 32


def _pattern(period: int, h: int = 40, w: int = 48) -> np.ndarray:
    """A mid-grey picture with a +-40 pattern repeating every ``period`` pixels in both directions."""
    y, x = np.mgrid[0:h, 0:w]
    wave = np.cos(2 * np.pi * y / period) * np.cos(2 * np.pi * x / period)
    return np.repeat((128 + 40 * wave)[..., None], 3, axis=2).astype(np.uint8)


@pytest.mark.parametrize("period", [2, 4])
def test_a_grid_of_period_two_or_four_is_removed(period):
    out = degrid(_pattern(period)).astype(int)
    assert out.shape == (40, 48, 3) and out.dtype == np.int64
    assert np.abs(out[3:-3, 3:-3] - 128).max() <= 1  # inside (the border reflects): flat grey


def test_flat_and_slowly_changing_pictures_pass():
    flat = np.full((20, 30, 3), 77, np.uint8)
    assert np.array_equal(degrid(flat), flat)
    ramp = np.repeat(np.linspace(0, 255, 60)[None, :, None], 3, axis=2).repeat(10, axis=0).astype(np.uint8)
    assert np.abs(degrid(ramp).astype(int) - ramp)[:, 3:-3].max() <= 1  # a linear ramp is kept
    slow = _pattern(16)
    # a 16-px pattern keeps about 0.89^2 of its amplitude (the filter's response there, along both axes)
    assert np.abs(degrid(slow).astype(int) - slow)[3:-3, 3:-3].max() < 0.25 * 40


def test_when_a_render_filters():
    assert wants_degrid(None, "transpose", "none", "full")
    for args in (("resize", "none", "full"), ("blur", "none", "full"), ("transpose", "face", ""),
                 ("transpose", "none", "square")):  # fmt: skip
        assert not wants_degrid(None, *args)  # no grid, a face, or a square run from before: as before
    assert not wants_degrid(False, "transpose", "none", "full") and wants_degrid(True, "resize", "none", "square")


def _run(folder: Path, upsample: str, frame: str) -> Path:
    folder.mkdir(parents=True)
    cfg = model_preset("tiny", size=SIZE, upsample=upsample)
    torch.manual_seed(0)
    nets = {"G_AB": build_generator(cfg), "G_BA": build_generator(cfg)}
    a = {"align": "none", "size": SIZE, "face": None, "name": "a", "frame": frame, "scale": 36}
    save_weights(folder / "weights.safetensors", nets, cfg, step=0, data={"A": a, "B": a})
    return folder


@pytest.mark.parametrize(
    "upsample, frame, given, filtered",
    [
        ("transpose", "full", None, True),
        ("transpose", "full", False, False),
        ("resize", "full", None, False),
        ("transpose", "square", None, False),
    ],
)
def test_the_plan_filters_whole_frames_of_transposed_convolutions(tmp_path, upsample, frame, given, filtered):
    src = make_video(tmp_path / "wide.mp4", frames=3, size=(64, 36))
    run = _run(tmp_path / "run", upsample, frame)
    cfg = RenderConfig(input=str(src), output=str(tmp_path / "out.mp4"), model=str(run), device="cpu", degrid=given)
    plan = plan_render(cfg)
    translate = plan.stage.keywords["translate"].translate
    assert isinstance(translate, Degrid) == filtered


def test_degrid_on_a_face_render_is_refused(tmp_path):
    src = make_video(tmp_path / "wide.mp4", frames=3, size=(64, 36))
    run = _run(tmp_path / "run", "transpose", "full")
    cfg = RenderConfig(input=str(src), output=str(tmp_path / "o.mp4"), model=str(run), align="face", degrid=True)
    with pytest.raises(RetargetError, match="--degrid"):
        plan_render(cfg)
