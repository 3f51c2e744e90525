"""``train --init-from RUN [--swap]``: a new run starting from another run's networks."""

from __future__ import annotations

import json

import pytest
import torch
from helpers import write_frames
from typer.testing import CliRunner

from retarget.cli import app
from retarget.config import TrainConfig, model_preset
from retarget.errors import RetargetError
from retarget.run import checkpoint as ckpt
from retarget.run import layout
from retarget.train import train
from retarget.train.init_from import SWAP, swap_sides
from retarget.train.loop import Hook
from retarget.train.resume import resume_config


@pytest.fixture
def domains(tmp_path):
    return str(write_frames(tmp_path / "a", 7, size=36)), str(write_frames(tmp_path / "b", 7, size=36, start=9))


def config(domains, out, *, seed=3, model="recycle", ngf=None, **kw):
    base = dict(steps=3, pool=2, checkpoint_every=100, preview_every=100, preview_frames=0, log_every=1)
    base.update(kw)
    arch = model_preset("tiny", model=model, size=32, ngf=ngf)
    return TrainConfig(*domains, out=str(out), preset="tiny", model=arch, device="cpu", seed=seed, **base)


def newest(run_dir):
    return ckpt.read_weights(ckpt.latest_checkpoint(run_dir) / layout.WEIGHTS)


class AtStart(Hook):
    """Keeps copies of the networks' weights and the trainer's step before the first step."""

    def before_train(self, trainer) -> None:
        self.step = trainer.step
        self.weights = {
            f"{n}.{k}": v.detach().clone() for n, m in trainer.nets.items() for k, v in m.state_dict().items()
        }


@pytest.fixture
def source_run(domains, tmp_path):
    run = tmp_path / "first"
    train(config(domains, run, seed=1, steps=4))
    return run


@pytest.mark.parametrize("swap", [False, True])
def test_a_run_starts_from_the_other_runs_weights_then_trains(domains, tmp_path, source_run, swap):
    _, theirs = newest(source_run)
    start = AtStart()
    cfg = config(domains, tmp_path / "second", seed=9, init_from=str(source_run), init_swap=swap)
    result = train(cfg, hooks=[start])
    assert start.step == 0 and result.steps == 3  # a fresh step count
    expected = swap_sides(theirs) if swap else theirs
    assert set(start.weights) == set(theirs)
    for key, value in expected.items():
        assert torch.equal(start.weights[key], value), key
    if swap:  # the sides really were exchanged: G_AB took G_BA's weights
        key = next(k for k in theirs if k.startswith("G_AB.") and k.endswith("weight"))
        assert not torch.equal(theirs[key], theirs[key.replace("G_AB", "G_BA")])
    _, after = newest(tmp_path / "second")
    assert any(not torch.equal(after[k], v) for k, v in expected.items())  # then it trains
    state = ckpt.load_state(ckpt.latest_checkpoint(tmp_path / "second") / layout.STATE)
    assert state["step"] == 3
    saved = json.loads((tmp_path / "second" / layout.CONFIG).read_text())
    assert saved["init_from"] == str(source_run.resolve()) and saved["init_swap"] is swap


def test_resuming_keeps_init_from_and_does_not_read_the_other_run_again(domains, tmp_path, source_run):
    run = tmp_path / "second"
    train(config(domains, run, init_from=str(source_run), steps=2, checkpoint_every=1))
    import shutil

    shutil.rmtree(source_run)  # a resumed run needs only its own checkpoint
    cfg = resume_config(run, steps=4)
    assert cfg.init_from == str(source_run.resolve())
    assert train(cfg).steps == 4
    with pytest.raises(RetargetError, match=r"^--swap True: the run in .* was trained with False"):
        resume_config(run, init_swap=True)
    with pytest.raises(RetargetError, match=r"^--init-from elsewhere: the run in"):
        resume_config(run, init_from="elsewhere")


def test_another_architecture_is_one_line_naming_the_fields_and_writes_nothing(domains, tmp_path, source_run):
    out = tmp_path / "second"
    with pytest.raises(RetargetError) as err:
        train(config(domains, out, ngf=4, init_from=str(source_run)))
    message = str(err.value)
    assert "\n" not in message and message.startswith(f"--init-from {source_run}: another architecture")
    assert "ngf 8 there, 4 here" in message
    assert not out.exists()
    with pytest.raises(RetargetError, match="model recycle there, cyclegan here"):
        train(config(domains, out, model="cyclegan", init_from=str(source_run)))
    assert not out.exists()


def test_a_missing_run_or_one_without_checkpoint_is_one_line(domains, tmp_path):
    out = tmp_path / "second"
    with pytest.raises(RetargetError, match=r"^--init-from \S+nowhere: no such run folder or weights file$"):
        train(config(domains, out, init_from=str(tmp_path / "nowhere")))
    (tmp_path / "empty").mkdir()
    with pytest.raises(RetargetError, match=r"^--init-from \S+empty: \S+empty: not a run folder"):
        train(config(domains, out, init_from=str(tmp_path / "empty")))
    assert not out.exists()


def test_the_cli_takes_init_from_and_swap_and_refuses_swap_alone(domains, tmp_path, source_run):
    runner = CliRunner()
    base = ["train", *domains, "--preset", "tiny", "--size", "32", "--steps", "1", "--device", "cpu"]
    base += ["--preview-frames", "0", "--seed", "2"]
    result = runner.invoke(app, [*base, "-o", str(tmp_path / "s"), "--init-from", str(source_run), "--swap"])
    assert result.exit_code == 0, result.output
    saved = json.loads((tmp_path / "s" / layout.CONFIG).read_text())
    assert saved["init_swap"] is True and saved["init_from"] == str(source_run.resolve())
    result = runner.invoke(app, [*base, "-o", str(tmp_path / "t"), "--swap"])
    assert result.exit_code == 2 and "--swap: takes the B->A side" in result.output
    assert not (tmp_path / "t").exists()


def test_swap_sides_exchanges_every_pair():
    tensors = {f"{n}.w": torch.tensor(float(i)) for i, n in enumerate(SWAP)}
    swapped = swap_sides(tensors)
    assert {k: float(v) for k, v in swapped.items()} == {f"{SWAP[n]}.w": float(i) for i, n in enumerate(SWAP)}
    assert swap_sides(swapped).keys() == tensors.keys()
