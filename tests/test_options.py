"""Option facts live once, in the config fields' metadata: ranges, resumable, meaning of absence.

The CLI's limits, the library's checks, ``RESUMABLE`` and ``ABSENT_MEANT`` are all read
from there; these tests hold each reader to it.
"""

from __future__ import annotations

import dataclasses
import inspect
import typing

import pytest
import typer.main
from typer.testing import CliRunner

import retarget.config as config
from retarget.cli import app
from retarget.config import (
    ABSENT_MEANT,
    CONFIGS,
    DemoConfig,
    EvalConfig,
    ExtractConfig,
    FaceConfig,
    LossConfig,
    ModelConfig,
    RenderConfig,
    TrainConfig,
    check_train_config,
    from_dict,
    replace,
)
from retarget.errors import RetargetError
from retarget.options import OptionError, Range, check_config, option_range

NUMERIC = (int, float, typing.Optional[int], typing.Optional[float])
#: Where each command's options come from (first class with the field wins, as in cli.py).
COMMANDS = {
    "extract": (ExtractConfig, FaceConfig),
    "train": (ModelConfig, LossConfig, TrainConfig),
    "render": (RenderConfig,),
    "eval": (EvalConfig,),
    "demo": (DemoConfig,),
}
REQUIRED = {"videos": ("v.mp4",), "a_dir": "a", "b_dir": "b", "input": "i.mp4", "output": "o.mp4", "data": "d"}


def _numeric_fields(cls):
    hints = typing.get_type_hints(cls)
    return [f for f in dataclasses.fields(cls) if hints[f.name] in NUMERIC]


def _minimal(cls):
    return cls(**{f.name: REQUIRED[f.name] for f in dataclasses.fields(cls) if f.name in REQUIRED})


def test_configs_lists_every_config_dataclass():
    found = {c for _, c in inspect.getmembers(config, inspect.isclass) if c.__name__.endswith("Config")}
    assert found == set(CONFIGS)


@pytest.mark.parametrize("cls", CONFIGS, ids=lambda c: c.__name__)
def test_every_numeric_option_has_a_range_and_only_those(cls):
    numeric = {f.name for f in _numeric_fields(cls)}
    ranged = {f.name for f in dataclasses.fields(cls) if option_range(cls, f.name) is not None}
    assert numeric, cls
    assert ranged == numeric
    for name in numeric:  # and the default lies inside it
        default = getattr(_minimal(cls), name)
        assert default is None or default in option_range(cls, name), f"{cls.__name__}.{name}"


@pytest.mark.parametrize("term", [f.name for f in _numeric_fields(LossConfig)])
def test_a_negative_weight_of_any_loss_term_is_refused(term):
    cfg = TrainConfig("a", "b", loss=replace(LossConfig(), **{term: -1.0}))
    flag = "--" + term.replace("_", "-")
    with pytest.raises(OptionError, match=f"^{flag} -1: must be at least"):
        check_train_config(cfg)


@pytest.mark.parametrize("term", ["warp", "feature_match", "content"])
def test_library_train_refuses_a_negative_weight_before_writing(tmp_path, term):
    from retarget.train import train

    out = tmp_path / "run"
    cfg = TrainConfig(str(tmp_path / "a"), str(tmp_path / "b"), out=str(out), loss=LossConfig(**{term: -1.0}))
    with pytest.raises(RetargetError, match=f"--{term.replace('_', '-')} -1: must be at least 0"):
        train(cfg)
    assert not out.exists()


def _library_cases(tmp_path):
    from retarget.dataset.extract import extract
    from retarget.demo.demo import demo
    from retarget.eval.evaluate import evaluate
    from retarget.render.render import render

    video = str(tmp_path / "in.mp4")
    return [
        (extract, ExtractConfig(videos=(video,), output=str(tmp_path / "ds"), quality=0), "--quality 0"),
        (extract, ExtractConfig(videos=(video,), face=FaceConfig(detect_every=0)), "--detect-every 0"),
        (render, RenderConfig(video, str(tmp_path / "o.mp4"), crf=60), "--crf 60: must be at least 0 and at most 51"),
        (evaluate, EvalConfig(video, source=video, cut_threshold=2.0), "--cut-threshold 2: must be"),
        (demo, DemoConfig(out=str(tmp_path / "demo"), steps=0), "--steps 0: must be at least 1"),
    ]


@pytest.mark.parametrize("case", range(5))
def test_library_entry_points_refuse_what_the_cli_refuses(tmp_path, case):
    fn, cfg, message = _library_cases(tmp_path)[case]
    with pytest.raises(RetargetError, match=f"^{message}"):
        fn(cfg)
    assert sorted(p.name for p in tmp_path.iterdir()) == []  # refused before any file was read or written


def _options(command):
    cmd = typer.main.get_command(app).commands[command]
    return [p for p in cmd.params if p.param_type_name == "option"]


def _field_range(command, name):
    for cls in COMMANDS[command]:
        if name in {f.name for f in dataclasses.fields(cls)}:
            return option_range(cls, name)
    return None


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_cli_limits_are_the_field_metadata(command):
    checked = 0
    for param in _options(command):
        rng = _field_range(command, param.name)
        limits = (getattr(param, "min", None), getattr(param, "max", None))
        if rng is None:
            assert limits == (None, None), f"{command} --{param.name}: limits without a field range"
        elif rng.closed:
            assert limits == (rng.low, rng.high), f"{command} --{param.name}"
            checked += 1
        else:  # typer cannot exclude an end: check_train_config does it (next test)
            assert command == "train" and limits == (None, None), f"{command} --{param.name}"
    assert checked


OPEN = [(f.name, option_range(TrainConfig, f.name)) for f in _numeric_fields(TrainConfig)]
OPEN = [(name, rng) for name, rng in OPEN if not rng.closed]


@pytest.mark.parametrize("name,rng", OPEN, ids=[n for n, _ in OPEN])
def test_the_train_cli_refuses_open_ends_with_the_library_line(name, rng):
    edge = rng.low if rng.low_open else rng.high
    flag = "--" + name.replace("_", "-")
    result = CliRunner().invoke(app, ["train", "a", "b", flag, f"{edge:g}"])
    assert result.exit_code == 2
    assert f"{flag} {edge:g}: must be {rng.text()}" in " ".join(result.output.replace("│", " ").split())


def test_the_cli_refuses_a_negative_seed():
    assert CliRunner().invoke(app, ["train", "a", "b", "--seed", "-1"]).exit_code == 2
    assert CliRunner().invoke(app, ["demo", "--seed", "-1"]).exit_code == 2


def test_resumable_options_are_run_control_only():
    from retarget.train.resume import RESUMABLE

    # how long, how often, where and in what precision (a run resumed on another machine)
    before = {"steps", "time_limit", "checkpoint_every", "preview_every", "log_every", "threads", "device", "keep"}
    before |= {"amp", "dist_timeout"}
    assert set(RESUMABLE) == before and len(RESUMABLE) == len(before)
    top = {f.name for f in dataclasses.fields(TrainConfig)}
    for cls in (ModelConfig, LossConfig):  # nothing that changes what is trained
        assert not {f.name for f in dataclasses.fields(cls) if f.metadata.get("resumable")} - top


def test_absent_keys_load_as_before():
    assert ABSENT_MEANT == {LossConfig: {"warp": 0.0}}
    assert LossConfig().warp != ABSENT_MEANT[LossConfig]["warp"]  # else the entry would mean nothing
    assert from_dict(LossConfig, {}).warp == 0.0 and from_dict(LossConfig, {"warp": 5.0}).warp == 5.0
    old = from_dict(TrainConfig, {"a_dir": "a", "b_dir": "b", "loss": {"cycle": 3.0}})
    assert old.loss == LossConfig(cycle=3.0, warp=0.0)  # nested: the run saved before the term keeps it off
    for cls in CONFIGS:  # every other missing key (a missing nested config too) takes its default
        minimal = _minimal(cls)
        loaded = from_dict(cls, {k: v for k, v in REQUIRED.items() if hasattr(minimal, k)})
        assert loaded == replace(minimal, **ABSENT_MEANT.get(cls, {})), cls.__name__


@pytest.mark.parametrize(
    "rng,inside,outside,text",
    [
        (Range(0, 1, False, True), [0, 0.5, 0.999], [-0.1, 1, 2, float("nan")], "at least 0 and below 1"),
        (Range(0, None, True), [1e-9, 1e9], [0, -1, float("inf")], "above 0"),
        (Range(1), [1, 10**12], [0, float("-inf")], "at least 1"),
        (Range(0, 51), [0, 51], [-1, 52], "at least 0 and at most 51"),
    ],
)
def test_range_contains_and_says_its_ends(rng, inside, outside, text):
    assert all(v in rng for v in inside) and not any(v in rng for v in outside)
    assert rng.text() == text


def test_check_config_walks_nested_configs_and_skips_unset_values():
    check_config(RenderConfig("i", "o", step=None))
    with pytest.raises(OptionError, match="^--margin -1: must be at least 0"):
        check_config(ExtractConfig(videos=("v",), face=FaceConfig(margin=-1.0)))
    with pytest.raises(OptionError, match="^--detect-size 10: must be at least 64"):
        check_config(RenderConfig("i", "o", face=FaceConfig(detect_size=10)))
    with pytest.raises(ValueError):  # the CLI's usage-error path catches ValueError
        check_config(EvalConfig("o", cut_threshold=-0.5))
