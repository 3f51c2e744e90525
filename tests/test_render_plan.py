"""The render plan: every check runs once per render, each mode owns its options, one streaming core."""

from __future__ import annotations

import collections
from pathlib import Path

import pytest
from helpers import make_video, tiny_pair_run

from retarget.config import FaceConfig, RenderConfig
from retarget.errors import RetargetError
from retarget.options import OptionError, check_effects
from retarget.render import plan as plan_mod
from retarget.render import stream as stream_mod
from retarget.render.render import render

SIZE = 16


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    """A tiny untrained pair: A whole frames (centre squares), B aligned faces."""
    return tiny_pair_run(tmp_path_factory.mktemp("models") / "a-to-b", SIZE)


def _spy(monkeypatch, module, name: str, calls: collections.Counter) -> None:
    real = getattr(module, name)

    def counted(*args, **kwargs):
        calls[name] += 1
        return real(*args, **kwargs)

    monkeypatch.setattr(module, name, counted)


def test_a_render_checks_each_option_once(tmp_path, run_dir, monkeypatch):
    """Ranges, paths, the probe, the interplay and the no-effect rule: one call each per render."""
    calls: collections.Counter = collections.Counter()
    for name in ("check_config", "check_paths", "check_options", "probe"):
        _spy(monkeypatch, stream_mod, name, calls)
    _spy(monkeypatch, plan_mod, "check_effects", calls)
    src = make_video(tmp_path / "in.mp4", frames=6, size=(48, 32))
    cfg = RenderConfig(str(src), str(tmp_path / "out.mp4"), model=str(run_dir), device="cpu", stabilize=0.5)
    summary = render(cfg)
    assert summary.frames == 6
    # check_effects twice: the swap's options before the run is opened (a swap option without
    # --target-faces names itself, not a missing run), then the rest with the run's alignment
    assert calls == {"check_config": 1, "check_paths": 1, "check_options": 1, "probe": 1, "check_effects": 2}


def test_a_swap_plan_owns_only_face_options(tmp_path):
    """The swap's plan refuses a trained run's options from their metadata, not from a hand-kept list."""
    src = make_video(tmp_path / "in.mp4", frames=3, size=(48, 32))
    base = dict(input=str(src), output=str(tmp_path / "o.mp4"), target_faces=str(tmp_path / "faces"))
    for extra, flag in [
        ({"model": "run"}, "--model run"),
        ({"step": 3}, "--step 3"),
        ({"to_domain": "x"}, "--to x"),
        ({"from_domain": "x"}, "--from x"),
        ({"direction": "b2a"}, "--direction b2a"),
        ({"frame": "full"}, "--frame full"),
        ({"scale": 64}, "--scale 64"),
        ({"tile": 64}, "--tile 64"),
        ({"align": "none"}, "--align none"),
        ({"device": "cpu"}, "--device cpu"),
    ]:
        with pytest.raises(RetargetError, match=f"^{flag}: --target-faces swaps faces without a trained run"):
            render(RenderConfig(**base, **extra))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.mp4"]


def test_whole_frame_render_refuses_face_options_and_a_face_render_whole_frame_ones(tmp_path, run_dir):
    src = make_video(tmp_path / "in.mp4", frames=3, size=(48, 32))

    def go(**kw):
        return render(RenderConfig(str(src), str(tmp_path / "o.mp4"), model=str(run_dir), device="cpu", **kw))

    for kw, line in [
        ({"mask": "ellipse"}, r"^--mask ellipse: has an effect with --align face only \(this is --align none\)$"),
        ({"blend": "seamless"}, r"^--blend seamless: has an effect with --align face only"),
        ({"feather": 0.2}, r"^--feather 0.2: has an effect with --align face only"),
        ({"mask_erode": 2}, r"^--mask-erode 2: has an effect with --align face only"),
        ({"color_match": "none"}, r"^--color-match none: has an effect"),
        (
            {"direction": "b2a", "scale": 32},
            r"^--scale 32: has an effect with --align none only \(this is --align face\)$",
        ),
        ({"direction": "b2a", "upscale": "detail"}, r"^--upscale detail: has an effect with --align none only"),
        ({"enhancer_blur": 2.0}, r"^--enhancer-blur 2: applies with --enhancer only$"),
    ]:
        with pytest.raises(OptionError, match=line):
            go(**kw)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.mp4"]


def test_a_face_render_that_finds_no_face_writes_nothing(tmp_path, run_dir):
    """--align face on a video with no face would copy the input: refused, nothing written."""
    pytest.importorskip("dlib")
    src = make_video(tmp_path / "in.mp4", frames=4, size=(48, 32))
    out = tmp_path / "o.mp4"
    with pytest.raises(RetargetError, match=r"no face found in any frame"):
        render(RenderConfig(str(src), str(out), model=str(run_dir), device="cpu", align="face"))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.mp4"]


def test_the_no_effect_rule_refuses_names_the_decider_and_can_warn():
    from dataclasses import dataclass

    from retarget.options import Only, opt

    @dataclass(frozen=True)
    class Cfg:
        fmt: str = "png"
        quality: int = opt(95, only=Only("fmt", ("jpg",)))
        old: bool = opt(False, only=Only("fmt", ("jpg",), warn=True, why="ignored for {decider}"))

    check_effects(Cfg())  # defaults are never "given"
    check_effects(Cfg(fmt="jpg", quality=50))
    with pytest.raises(OptionError, match=r"^--quality 50: has an effect with --fmt jpg only \(this is --fmt png\)$"):
        check_effects(Cfg(quality=50))
    seen: list[str] = []
    assert check_effects(Cfg(old=True), warn=seen.append) == ["--old: ignored for png"] == seen
    with pytest.raises(OptionError):  # the command line says what was typed, even at the default
        check_effects(Cfg(), given={"quality"})
    check_effects(Cfg(quality=50), context={"fmt": "jpg"})  # a decider the command resolved itself
    check_effects(Cfg(quality=50), deciders=("other",))  # only the rules of the deciders named
    with pytest.raises(OptionError):
        check_effects(Cfg(quality=50), deciders=("fmt",))


def test_every_command_applies_the_rule():
    from retarget.config import EvalConfig, ExtractConfig, LossConfig, ModelConfig, TrainConfig

    cases = [
        (ExtractConfig(videos=("a.mp4",), quality=50), "--quality 50: has an effect with --format jpg only"),
        (
            ExtractConfig(videos=("a.mp4",), face=FaceConfig(margin=0.2)),
            "--margin 0.2: has an effect with --align face",
        ),
        (
            ExtractConfig(videos=("a.mp4",), align="face", crop=(0, 0, 8, 8)),
            "--crop 0,0,8,8: has an effect with --align none",
        ),
        (
            TrainConfig("a", "b", model=ModelConfig(model="cyclegan"), loss=LossConfig(warp=5)),
            "--warp 5: has an effect with --model recycle",
        ),
        (TrainConfig("a", "b", steps=100, decay_from=100), "--decay-from 100: at or past --steps 100"),
        (
            TrainConfig("a", "b", loss=LossConfig(cls=2)),
            "--cls 2: the domain classifier's weight; only a multi-domain run",
        ),
        (EvalConfig(output="o.mp4", per_frame=True), "--per-frame: has an effect with --json only"),
        (EvalConfig(output="o.mp4", face_backend="fan"), "--face-backend fan: has an effect with --faces only"),
    ]
    for cfg, line in cases:
        with pytest.raises(OptionError, match="^" + line.replace("(", r"\(")):
            check_effects(cfg)
    check_effects(TrainConfig("a", "b", model=ModelConfig(model="cyclegan")))  # --warp at its default: fine
    check_effects(TrainConfig("a", "b", steps=100, decay_from=50))
