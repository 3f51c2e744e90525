"""A still image is not a video: probe refuses it in one line, and so do extract, render and eval."""

from __future__ import annotations

import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest
from helpers import make_video
from PIL import Image

from retarget.config import EvalConfig, ExtractConfig, RenderConfig
from retarget.errors import RetargetError
from retarget.video.reader import VideoReader, probe


def _picture(shift: int = 0) -> np.ndarray:
    rng = np.random.default_rng(shift)
    return np.roll(rng.integers(0, 256, (32, 48, 3), dtype=np.uint8), shift, axis=1)


def _stills(folder: Path) -> list[Path]:
    """One picture as PNG, JPEG, BMP, WebP, a one-picture GIF, and a PNG whose name says .mp4."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for ext in ("png", "jpg", "bmp", "webp"):
        path = folder / f"still.{ext}"
        assert cv2.imwrite(str(path), _picture())
        paths.append(path)
    gif = folder / "one.gif"
    Image.fromarray(_picture()).save(gif)
    disguised = folder / "photo.mp4"
    shutil.copy(folder / "still.png", disguised)
    return [*paths, gif, disguised]


def _animated_gif(path: Path, frames: int = 3) -> Path:
    pictures = [Image.fromarray(_picture(4 * i)) for i in range(frames)]
    pictures[0].save(path, save_all=True, append_images=pictures[1:], duration=100, loop=0)
    return path


def test_probe_refuses_every_still_image_format_in_one_line(tmp_path):
    for path in _stills(tmp_path):
        with pytest.raises(RetargetError) as err:
            probe(path)
        assert str(err.value) == f"{path}: a still image, not a video"
        with pytest.raises(RetargetError, match="a still image"):
            VideoReader(path)


def test_an_animated_gif_and_a_one_frame_video_stay_videos(tmp_path):
    gif = _animated_gif(tmp_path / "anim.gif", frames=3)
    info = probe(gif)
    assert (info.width, info.height) == (48, 32)
    with VideoReader(gif) as reader:
        assert len(list(reader)) == 3
    one = make_video(tmp_path / "one.mp4", frames=1)
    assert probe(one).width == 64  # a video of one frame is still a video


def test_extract_render_and_eval_refuse_a_still_image(tmp_path):
    from retarget.dataset.extract import extract
    from retarget.eval.evaluate import evaluate
    from retarget.render import render

    still = _stills(tmp_path / "in")[0]
    video = make_video(tmp_path / "v.mp4", frames=4)
    calls = {
        "extract": lambda: extract(ExtractConfig(videos=(str(still),), output=str(tmp_path / "ds"))),
        "render": lambda: render(RenderConfig(input=str(still), output=str(tmp_path / "out.mp4"))),
        "eval output": lambda: evaluate(EvalConfig(output=str(still), source=str(video))),
        "eval source": lambda: evaluate(EvalConfig(output=str(video), source=str(still))),
    }
    for what, call in calls.items():
        with pytest.raises(RetargetError) as err:
            call()
        assert str(err.value) == f"{still}: a still image, not a video", what
    assert not (tmp_path / "ds").exists() and not (tmp_path / "out.mp4").exists()
