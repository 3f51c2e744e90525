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
    import dataclasses
    import inspect

    import retarget.config as config

    # every config dataclass of the module, found rather than listed, with every field
    classes = [c for _, c in inspect.getmembers(config, inspect.isclass) if dataclasses.is_dataclass(c)]
    assert {"TrainConfig", "RenderConfig", "EvalConfig", "LossConfig"} <= {c.__name__ for c in classes}
    required = {"videos": ("v.mp4",), "a_dir": "a", "b_dir": "b", "input": "i.mp4", "output": "o.mp4", "data": "d"}
    for cls in classes:
        fields = dataclasses.fields(cls)
        cfg = cls(**{f.name: required[f.name] for f in fields if f.name in required})
        for f in fields:
            with pytest.raises(dataclasses.FrozenInstanceError):
                setattr(cfg, f.name, getattr(cfg, f.name))


@pytest.mark.parametrize(
    "changes,message",
    [
        ({"beta1": 1.0}, "--beta1 1: must be at least 0 and below 1"),
        ({"beta2": 1.0}, "--beta2 1: must be at least 0 and below 1"),
        ({"beta1": -0.1}, "--beta1 -0.1: must be"),
        ({"beta2": float("nan")}, "--beta2 nan: must be"),
        ({"lr": 0.0}, "--lr 0: must be above 0"),
        ({"lr": float("inf")}, "--lr inf: must be above 0"),
        ({"steps": 0}, "--steps 0: must be at least 1"),
        ({"batch_size": 0}, "--batch-size 0: must be at least 1"),
        ({"checkpoint_every": 0}, "--checkpoint-every 0: must be at least 1"),
        ({"pool": -1}, "--pool -1: must be at least 0"),
        ({"decay_from": -5}, "--decay-from -5: must be at least 0"),
        ({"load_size": 100}, "--load-size 100: must be at least --size 128"),
        ({"loss": LossConfig(cycle=-1.0)}, "--cycle -1: must be at least 0"),
        ({"model": model_preset("tiny", ngf=0)}, "--ngf 0: must be at least 1"),
    ],
)
def test_train_options_outside_their_range_are_named(changes, message):
    from retarget.config import check_train_config, replace

    cfg = replace(TrainConfig("a", "b"), **changes)
    with pytest.raises(ValueError) as err:
        check_train_config(cfg)
    assert str(err.value).startswith(message)


def test_train_options_at_the_edges_of_their_range_are_accepted():
    from retarget.config import check_train_config

    check_train_config(TrainConfig("a", "b"))
    check_train_config(TrainConfig("a", "b", beta1=0.0, beta2=0.9999, lr=1e-9, steps=1, pool=0, load_size=128))


def test_a_saved_loss_without_the_warp_key_loads_with_the_term_off():
    assert LossConfig().warp == 20.0  # today's default
    # a run saved before the term existed trained without it; resuming must not add it
    old = from_dict(TrainConfig, {"a_dir": "a", "b_dir": "b", "loss": {"cycle": 10.0}})
    assert old.loss.warp == 0.0 and old.loss.cycle == 10.0
    assert from_dict(LossConfig, {"warp": 20.0}).warp == 20.0
    assert from_dict(LossConfig, {"warp": 0.0}).warp == 0.0
