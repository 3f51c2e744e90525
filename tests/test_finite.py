"""Finite or refused: no NaN or infinite weight is written or loaded; a diverged run leaves nothing behind."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from helpers import tiny_train_config
from safetensors import safe_open
from safetensors.torch import save_file
from test_enhancer import face_dataset

from retarget.config import EnhancerConfig, FaceConfig, TrainConfig, model_preset
from retarget.errors import RetargetError
from retarget.nn.enhancer import FaceEnhancer
from retarget.nn.networks import build_networks
from retarget.run import checkpoint as ckpt
from retarget.run import layout, load_run
from retarget.run.enhancer import load_enhancer, save_enhancer
from retarget.run.info import DataInfo
from retarget.train.loop import Hook


def _tiny():
    return model_preset("tiny", size=32)


def _poison(net: torch.nn.Module, value: float) -> str:
    """Put ``value`` into one weight of ``net``; the name of the tensor it went into."""
    name, param = next(iter(net.named_parameters()))
    with torch.no_grad():
        param.view(-1)[1] = value
    return name


def _rewrite_with(path: Path, key: str, value: float) -> None:
    """Rewrite a safetensors file with ``value`` put into tensor ``key`` (its metadata kept)."""
    with safe_open(str(path), framework="pt") as f:
        meta = f.metadata()
        tensors = {k: f.get_tensor(k) for k in f.keys()}
    tensors[key] = tensors[key].clone()
    tensors[key].view(-1)[0] = value
    save_file(tensors, str(path), metadata=meta)


@pytest.mark.parametrize("value", [float("nan"), float("inf")])
def test_weights_that_are_not_finite_are_not_written(tmp_path, value):
    nets = build_networks(_tiny())
    key = "G_BA." + _poison(nets["G_BA"], value)
    target = tmp_path / "run" / layout.WEIGHTS
    with pytest.raises(RetargetError) as err:
        ckpt.save_weights(target, nets, _tiny(), 3)
    line = str(err.value)
    assert line.startswith(f"{target}: tensor {key} is not finite") and "\n" not in line
    assert not target.parent.exists() or not list(target.parent.iterdir())
    with pytest.raises(RetargetError, match=f"tensor {key} is not finite"):
        ckpt.write_checkpoint(tmp_path / "run", 3, nets, _tiny(), {"step": 3})
    assert ckpt.checkpoint_steps(tmp_path / "run") == [] and not (tmp_path / "run" / layout.CHECKPOINTS).exists()


def test_weights_that_are_not_finite_are_refused_on_load(tmp_path):
    run = tmp_path / "run"
    folder = ckpt.write_checkpoint(run, 2, build_networks(_tiny()), _tiny(), {"step": 2})
    assert load_run(run).step == 2  # sound before the damage
    _rewrite_with(
        folder / layout.WEIGHTS, "G_AB." + next(iter(build_networks(_tiny())["G_AB"].state_dict())), float("inf")
    )
    with pytest.raises(RetargetError) as err:
        load_run(run)
    assert str(err.value).startswith(f"{folder / layout.WEIGHTS}: tensor G_AB.") and "not finite (inf)" in str(
        err.value
    )
    assert load_run(run, names=("G_BA",)).networks["G_BA"] is not None  # only what is loaded is judged


def _enhancer_data() -> DataInfo:
    return DataInfo(align="face", size=64, face=FaceConfig())


def test_an_enhancer_that_is_not_finite_is_neither_written_nor_loaded(tmp_path):
    net = FaceEnhancer(4, 8, 1)
    cfg = EnhancerConfig(data="d", width=8, blocks=1)
    saved = save_enhancer(tmp_path / "good", net, cfg, _enhancer_data(), 3, {})
    key = _poison(net, float("nan"))
    with pytest.raises(RetargetError) as err:
        save_enhancer(tmp_path / "bad", net, cfg, _enhancer_data(), 3, {})
    assert str(err.value).startswith(f"{tmp_path / 'bad' / layout.ENHANCER_WEIGHTS}: tensor {key} is not finite")
    assert not (tmp_path / "bad").exists()
    assert load_enhancer(saved).steps == 3
    _rewrite_with(saved / layout.ENHANCER_WEIGHTS, key, float("nan"))
    with pytest.raises(RetargetError, match=f"^{saved / layout.ENHANCER_WEIGHTS}: tensor {key} is not finite"):
        load_enhancer(saved)


def test_train_enhancer_stops_in_one_line_when_its_loss_diverges(tmp_path, monkeypatch):
    from retarget.train import enhancer as enhancer_mod
    from retarget.train.enhancer import train_enhancer

    real = enhancer_mod.sample  # a diverged step, made sure: the lr's range (at most 1) no longer allows 1e30
    monkeypatch.setattr(enhancer_mod, "sample", lambda *a, **k: real(*a, **k) * float("nan"))

    cfg = EnhancerConfig(
        data=str(face_dataset(tmp_path / "faces", n=3)),
        out=str(tmp_path / "enh"),
        width=8,
        blocks=1,
        steps=30,
        time_limit=None,
        batch_size=2,
        patch=32,
        lr=1.0,
        device="cpu",
        amp="off",
    )
    with pytest.raises(RetargetError) as err:
        train_enhancer(cfg)
    line = str(err.value)
    assert "loss is not finite" in line and "--lr" in line and "\n" not in line
    assert not (tmp_path / "enh").exists()
    assert [p.name for p in tmp_path.iterdir()] == ["faces"]  # no temporary folder either


class _NanAt(Hook):
    """Fills every weight of G_AB with NaN after step ``at``: the next step's loss is NaN."""

    def __init__(self, at: int) -> None:
        self.at = at

    def after_step(self, trainer) -> None:
        if trainer.step == self.at:
            with torch.no_grad():
                for p in trainer.nets["G_AB"].parameters():
                    p.fill_(float("nan"))


def _config(tmp_path: Path, out: Path, **kw) -> TrainConfig:
    return tiny_train_config(tmp_path, out, **kw)


def test_a_diverged_new_run_leaves_no_run_folder_and_a_resumed_one_keeps_its_own(tmp_path):
    from retarget.train import train
    from retarget.train.resume import resume_config

    out = tmp_path / "models" / "run"
    with pytest.raises(RetargetError) as err:
        train(_config(tmp_path, out, steps=4, checkpoint_every=100), hooks=[_NanAt(1)])
    assert "non-finite loss" in str(err.value) and "\n" not in str(err.value)
    assert not (tmp_path / "models").exists()  # the folders this call created are gone

    train(_config(tmp_path, out, steps=2, checkpoint_every=100))
    with pytest.raises(RetargetError, match=r"last good checkpoint \(step 2\)"):
        train(resume_config(out, steps=5), hooks=[_NanAt(3)])
    assert ckpt.checkpoint_steps(out) == [2] and (out / layout.CONFIG).is_file()
    assert load_run(out).step == 2
