"""Configs survive a JSON round trip and presets resolve as documented."""

import json

import pytest

from retarget.config import (
    ExtractConfig,
    FaceConfig,
    LossConfig,
    RenderConfig,
    TrainConfig,
    from_dict,
    model_preset,
    to_dict,
    to_json,
)


def test_train_config_round_trip_through_json():
    cfg = TrainConfig("a", "b", model=model_preset("official", size=128), loss=LossConfig(identity=2.5), steps=7)
    back = from_dict(TrainConfig, json.loads(to_json(cfg)))
    assert back == cfg
    assert back.model.npf == 64 and back.loss.identity == 2.5


def test_extract_config_round_trip_keeps_tuples_and_nested_face():
    cfg = ExtractConfig(videos=("x.mp4", "y.mp4"), crop=(1, 2, 30, 40), face=FaceConfig(smooth=0.0))
    assert from_dict(ExtractConfig, to_dict(cfg)) == cfg


def test_unknown_keys_are_ignored_and_missing_take_defaults():
    cfg = from_dict(RenderConfig, {"input": "i.mp4", "output": "o.mp4", "from_the_future": 1})
    assert cfg == RenderConfig("i.mp4", "o.mp4")


def test_presets_and_overrides():
    official = model_preset("official", size=128)
    assert (official.ngf, official.blocks, official.npf, official.p_depth) == (64, 6, 64, 7)
    assert model_preset("official", size=256).p_depth == 8
    assert model_preset("official", size=64).p_depth == 6
    assert model_preset("tiny", size=32, ngf=4, blocks=None).ngf == 4
    with pytest.raises(ValueError):
        model_preset("huge")  # type: ignore[arg-type]


def test_configs_are_frozen():
    with pytest.raises(Exception):
        TrainConfig("a", "b").steps = 3  # type: ignore[misc]
