"""One source of defaults: the CLI's defaults are the config dataclasses' defaults."""

from __future__ import annotations

import dataclasses
from types import SimpleNamespace

import pytest
import typer.main
from typer.testing import CliRunner

from retarget.cli import app
from retarget.config import (
    DemoConfig,
    EvalConfig,
    ExtractConfig,
    FaceConfig,
    LossConfig,
    ModelConfig,
    RenderConfig,
    UNCAPPED_STEPS,
    TrainConfig,
    model_preset,
)

SOURCES = {
    "extract": (ExtractConfig, FaceConfig),
    "train": (TrainConfig, ModelConfig, LossConfig),
    "render": (RenderConfig,),
    "eval": (EvalConfig,),
    "demo": (DemoConfig,),
}
RENAMED = {("extract", "face"): "pick"}  # --face picks FaceConfig.pick
PRESET_OPTIONS = {"ngf", "blocks", "ndf", "npf", "p_depth", "p_residual"}  # None = the preset's value
# None = picked for the device and budget when neither is given (TrainConfig.auto), else default / 128
PICKED_OPTIONS = {"preset", "size"}
# --resume RUN names the run folder; the config it builds is resume_config(RUN) (out=RUN, resume=True)
RUN_FOLDER_OPTIONS = {("train", "resume")}
# --names a,b,c is one comma-separated string; unset (None) it is the field's () (test below)
COMMA_LISTS = {("train", "names")}


def _default(classes, name):
    for cls in classes:
        for f in dataclasses.fields(cls):
            if f.name == name and f.default is not dataclasses.MISSING:
                return f.default
    raise LookupError(name)


@pytest.mark.parametrize("command", sorted(SOURCES))
def test_option_defaults_come_from_the_config_dataclasses(command):
    cmd = typer.main.get_command(app).commands[command]
    options = [p for p in cmd.params if p.param_type_name == "option"]
    assert options
    for param in options:
        if (
            (command == "train" and param.name in PRESET_OPTIONS | PICKED_OPTIONS)
            or (command, param.name) in RUN_FOLDER_OPTIONS
            or (command, param.name) in COMMA_LISTS
        ):
            assert param.default is None
            continue
        field = RENAMED.get((command, param.name), param.name)
        assert param.default == _default(SOURCES[command], field), f"{command} --{param.name}"


def test_an_unset_comma_list_is_the_fields_default():
    from retarget.cli import _split_names

    assert _split_names(None) == TrainConfig.names == () and _split_names("a, b,c") == ("a", "b", "c")


def test_the_default_preset_is_modelconfig():
    assert model_preset("default") == ModelConfig() == TrainConfig("a", "b").model
    assert model_preset("default", model="cyclegan", size=64) == ModelConfig(model="cyclegan", size=64)


@pytest.mark.parametrize(
    "argv, module, expected",
    [
        # no architecture flag: the defaults, to be replaced by the pick for the device and budget
        (["train", "a", "b"], "retarget.train.launch.train", TrainConfig("a", "b", auto=True)),
        (["train", "a", "b", "--size", "128"], "retarget.train.launch.train", TrainConfig("a", "b")),
        (["train", "a", "b", "--preset", "default"], "retarget.train.launch.train", TrainConfig("a", "b")),
        # a budget without --steps: the time decides; with --steps, both bound the run
        (
            ["train", "a", "b", "--time-limit", "60"],
            "retarget.train.launch.train",
            TrainConfig("a", "b", auto=True, time_limit=60.0, steps=UNCAPPED_STEPS),
        ),
        (
            ["train", "a", "b", "--time-limit", "60", "--steps", "500"],
            "retarget.train.launch.train",
            TrainConfig("a", "b", auto=True, time_limit=60.0, steps=500),
        ),  # fmt: skip
        (["render", "in.mp4", "out.mp4"], "retarget.render.render.render", RenderConfig("in.mp4", "out.mp4")),
        (["extract", "v.mp4"], "retarget.dataset.extract.extract", ExtractConfig(videos=("v.mp4",))),
        (["demo"], "retarget.demo.demo.demo", DemoConfig()),
        (["eval", "out.mp4"], "retarget.eval.evaluate.evaluate", EvalConfig("out.mp4")),
    ],
)
def test_no_flags_means_the_dataclass_defaults(monkeypatch, argv, module, expected):
    import importlib

    seen = []
    mod, name = module.rsplit(".", 1)
    done = SimpleNamespace(interrupted=False, signal=None)  # what train returns: not interrupted
    monkeypatch.setattr(importlib.import_module(mod), name, lambda cfg, *a, **k: seen.append(cfg) or done)
    if argv[0] == "eval":  # eval prints what evaluate returned
        monkeypatch.setattr("retarget.eval.evaluate.print_result", lambda result: None)
    result = CliRunner().invoke(app, argv)
    assert result.exit_code == 0, result.output
    assert seen == [expected]
