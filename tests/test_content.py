"""Content networks (TorchScript f): loading, refusing bad files, the f-constancy term."""

from __future__ import annotations

import json
import warnings

import pytest
import torch
from test_train_data import write_frames
from torch import Tensor, nn
from typer.testing import CliRunner

from retarget.cli import app
from retarget.config import LossConfig, model_preset
from retarget.errors import RetargetError
from retarget.nn.content import ContentModel, content_paths, load_content_model, load_content_models
from retarget.nn.losses import l1
from retarget.nn.networks import build_networks
from retarget.nn.objectives import make_objective
from retarget.nn.warp_loss import add_motion

SIZE = 32
CPU = torch.device("cpu")


class Heat(nn.Module):
    """A tiny detector-like f: a 1-channel heat map and a 2-number head."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, stride=2, padding=1)
        self.head = nn.Conv2d(4, 1, 1)

    def forward(self, x: Tensor) -> dict[str, Tensor]:
        h = torch.relu(self.conv(x))
        return {"heat": self.head(h), "xy": h.mean((2, 3))[:, :2]}


class OnCuda(nn.Module):
    """Scripted with a hard-coded CUDA tensor: fails on a CPU."""

    def forward(self, x: Tensor) -> Tensor:
        return x + torch.zeros(1, device=torch.device("cuda"))


class Scalar(nn.Module):
    def forward(self, x: Tensor) -> Tensor:
        return x.mean()


class Integer(nn.Module):
    def forward(self, x: Tensor) -> Tensor:
        return (x > 0).long()


class Ragged(nn.Module):
    """Output width depends on the image content: same-sized inputs give other shapes."""

    def forward(self, x: Tensor) -> Tensor:
        n = int((x > 0.5).sum().item()) % 5 + 1
        return x.new_zeros(x.shape[0], n) + x.mean()


def script(tmp_path, net: nn.Module, name: str = "f.pt") -> str:
    path = tmp_path / name
    with warnings.catch_warnings():  # torch >= 2.9 marks TorchScript deprecated
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.jit.script(net).save(str(path))
    return str(path)


def _batch(model="recycle", seed=1):
    T = 3 if model == "recycle" else 1
    g = torch.Generator().manual_seed(seed)
    return add_motion({d: torch.rand(2, T, 3, SIZE, SIZE, generator=g) * 2 - 1 for d in "AB"})


def _objective(model="recycle", models=None, **loss):
    cfg = model_preset("tiny", model=model, size=SIZE)
    torch.manual_seed(0)
    nets = build_networks(cfg)
    return nets, make_objective(cfg, LossConfig(**loss), nets, models)


# -- loading --------------------------------------------------------------------


@pytest.mark.kernels
def test_torchscript_round_trip_gives_the_original_outputs(tmp_path):
    torch.manual_seed(0)
    net = Heat()
    path = script(tmp_path, net)
    f = load_content_model(path, CPU, SIZE, None, "minus1_1")
    x = torch.rand(3, 3, SIZE, SIZE) * 2 - 1
    want = net(x)
    got = f.outputs(x)
    # TorchScript runs the same aten kernels on the same shapes; allclose (1e-5 relative) spares only the
    # last bits, should its executor ever fuse or reorder them
    assert len(got) == 2 and torch.allclose(got[0], want["heat"]) and torch.allclose(got[1], want["xy"])
    assert all(not p.requires_grad for p in f.net.parameters()) and not f.net.training


@pytest.mark.parametrize("norm", ["minus1_1", "0_1", "imagenet"])
def test_inputs_are_resized_and_normalised(tmp_path, norm):
    f = load_content_model(script(tmp_path, Heat()), CPU, SIZE, 16, norm)
    x = torch.full((1, 3, SIZE, SIZE), 0.5)
    y = f.prepare(x)
    assert y.shape == (1, 3, 16, 16)
    expect = {
        "minus1_1": [0.5] * 3,
        "0_1": [0.75] * 3,
        "imagenet": [(0.75 - m) / s for m, s in zip((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))],
    }
    assert y[0, :, 0, 0].tolist() == pytest.approx(expect[norm], rel=1e-5)


def test_one_network_or_one_per_direction(tmp_path):
    shared, own = script(tmp_path, Heat(), "f.pt"), script(tmp_path, Heat(), "g.pt")
    assert content_paths(LossConfig(content_model=shared)) == {"A": shared, "B": shared}
    assert content_paths(LossConfig(content_model=shared, content_model_b=own)) == {"A": shared, "B": own}
    assert content_paths(LossConfig(content_model_a=own)) == {"A": own}
    models = load_content_models(LossConfig(content_model=shared), CPU, SIZE)
    assert models["A"] is models["B"]  # one file is loaded once
    assert load_content_models(LossConfig(content_model=shared, content=0.0), CPU, SIZE) == {}


# -- the term ---------------------------------------------------------------------


@pytest.mark.parametrize("model", ["recycle", "cyclegan"])
def test_content_term_follows_its_formula(tmp_path, model):
    f = load_content_model(script(tmp_path, Heat()), CPU, SIZE, None, "minus1_1")
    nets, obj = _objective(model, {"A": f}, content=3.0)
    batch = _batch(model)
    terms, _ = obj.generator_terms(batch)
    assert "A/content" in terms and "B/content" not in terms  # only A has a network
    a = batch["A"][:, : max(obj.p, 1)].flatten(0, 1)
    fake = nets["G_AB"](a)
    want = sum(l1(p, t) for p, t in zip(f.outputs(fake), f.outputs(a))) / 2
    assert terms["A/content"].item() == pytest.approx(3.0 * want.item(), rel=1e-4)
    assert terms["A/content"].requires_grad


def test_content_term_absent_with_zero_weight_or_no_network(tmp_path):
    f = load_content_model(script(tmp_path, Heat()), CPU, SIZE, None, "minus1_1")
    for content, models in ((0.0, {"A": f, "B": f}), (1.0, None)):
        _, obj = _objective("recycle", models, content=content)
        terms, _ = obj.generator_terms(_batch())
        assert not any(k.endswith("/content") for k in terms)


def test_real_outputs_are_computed_once_without_gradient(tmp_path, monkeypatch):
    f = load_content_model(script(tmp_path, Heat()), CPU, SIZE, None, "minus1_1")
    seen = []
    original = ContentModel.outputs

    def spy(self, x):
        seen.append(torch.is_grad_enabled())
        return original(self, x)

    monkeypatch.setattr(ContentModel, "outputs", spy)
    _, obj = _objective("recycle", {"A": f, "B": f})
    obj.generator_terms(_batch())
    assert seen == [False, True, False, True]  # per direction: f(x) under no_grad, then f(G(x))


def test_content_term_falls_when_overfitting_one_batch(tmp_path):
    from retarget.nn.step import Stepper, make_optimizers

    f = load_content_model(script(tmp_path, Heat()), CPU, SIZE, None, "minus1_1")
    nets, obj = _objective("cyclegan", {"A": f, "B": f}, adv=0.0, cycle=0.0, content=1.0)
    stepper = Stepper(obj, *make_optimizers(nets, lr=1e-3))
    batch = _batch("cyclegan")
    values = [stepper.step(batch)["A/content"] for _ in range(30)]
    assert sum(values[-3:]) < 0.5 * sum(values[:3]), values


# -- bad content models --------------------------------------------------------------


def _bad_file(tmp_path, case: str) -> str:
    path = tmp_path / f"{case}.pt"
    if case == "missing":
        return str(path)
    if case == "state_dict":
        torch.save(Heat().state_dict(), path)
    elif case == "pickled_module":
        torch.save(Heat(), path)
    elif case == "legacy_pickle":
        torch.save(Heat().state_dict(), path, _use_new_zipfile_serialization=False)
    elif case == "text":
        path.write_text("not a network\n")
    elif case == "cuda_inside":
        return script(tmp_path, OnCuda(), path.name)
    elif case == "scalar":
        return script(tmp_path, Scalar(), path.name)
    elif case == "integer":
        return script(tmp_path, Integer(), path.name)
    return str(path)


BAD = {
    "missing": "no such file",
    "state_dict": "not TorchScript",
    "pickled_module": "not TorchScript",
    "legacy_pickle": "is a pickle",
    "text": "not a TorchScript file",
    "cuda_inside": "another device",
    "scalar": "batch as first dimension",
    "integer": "float tensors",
}


@pytest.mark.parametrize("case", list(BAD))
def test_bad_content_model_gives_one_line_error(tmp_path, case):
    if case == "cuda_inside" and torch.cuda.is_available():
        pytest.skip("the hard-coded CUDA tensor only fails on a machine without CUDA")
    path = _bad_file(tmp_path, case)
    with pytest.raises(RetargetError, match=BAD[case]) as info:
        load_content_model(path, CPU, SIZE, None, "minus1_1")
    assert "\n" not in str(info.value) and path in str(info.value)


class OutOfMemory(nn.Module):
    """A content network that runs out of GPU memory (the message names CUDA and a device)."""

    def forward(self, x: Tensor) -> Tensor:
        raise torch.OutOfMemoryError(
            "CUDA out of memory. Tried to allocate 2.00 GiB. GPU 0 has a total capacity of 23.6 GiB of which "
            "1.2 GiB is free. Including non-PyTorch memory, this process has 22.3 GiB memory in use."
        )


def test_out_of_memory_inside_the_content_network_is_named_as_such():
    f = ContentModel(OutOfMemory(), "f.pt", None, "minus1_1")
    with pytest.raises(RetargetError) as info:
        f.loss(torch.zeros(2, 3, SIZE, SIZE), torch.zeros(2, 3, SIZE, SIZE))
    text = str(info.value)
    assert text.startswith("content model f.pt: out of memory on cpu with input [2, 3, 32, 32] (CUDA out of memory)")
    assert "--batch-size" in text and "another device" not in text and "\n" not in text


def test_outputs_that_change_shape_between_image_and_translation(tmp_path):
    f = load_content_model(script(tmp_path, Ragged()), CPU, SIZE, None, "minus1_1")
    x = torch.zeros(2, 3, SIZE, SIZE)
    y = torch.ones(2, 3, SIZE, SIZE)
    with pytest.raises(RetargetError, match="output shapes differ"):
        f.loss(x, y)


# -- through the CLI ------------------------------------------------------------------------

TINY = ["--preset", "tiny", "--size", "32", "--device", "cpu", "--pool", "2", "--log-every", "1"]


@pytest.fixture
def data(tmp_path):
    return str(write_frames(tmp_path / "A", 6, size=36)), str(write_frames(tmp_path / "B", 6, size=36, start=3))


def test_train_cli_records_new_terms_and_the_content_model(tmp_path, data, monkeypatch):
    script(tmp_path, Heat())  # f.pt, named relative to the working folder below
    monkeypatch.chdir(tmp_path)
    out = tmp_path / "run"
    result = CliRunner().invoke(
        app,
        [
            "train",
            *data,
            "--out",
            str(out),
            *TINY,
            "--steps",
            "2",
            "--model",
            "cyclegan",
            "--feature-match",
            "1",
            "--content-model-a",
            "f.pt",
            "--content",
            "2",
        ],
    )
    assert result.exit_code == 0, result.output
    record = json.loads((out / "metrics.jsonl").read_text().splitlines()[-1])
    assert {"loss/A/feature_match", "loss/B/feature_match", "loss/A/content"} <= set(record)
    assert "loss/B/content" not in record
    loss = json.loads((out / "config.json").read_text())["loss"]
    assert loss["content_model_a"] == str(tmp_path / "f.pt") and loss["content"] == 2 and loss["feature_match"] == 1


@pytest.mark.parametrize("case", ["missing", "state_dict", "scalar"])
def test_train_cli_bad_content_model_exits_with_one_line(tmp_path, data, case):
    path = _bad_file(tmp_path, case)
    result = CliRunner().invoke(
        app, ["train", *data, "--out", str(tmp_path / "run"), *TINY, "--steps", "1", "--content-model", path]
    )
    assert result.exit_code != 0
    assert "Traceback" not in result.output and BAD[case] in result.output
    assert len([ln for ln in result.output.splitlines() if ln.strip()]) == 1, result.output


@pytest.mark.slow
def test_synthetic_to_real_example_runs(tmp_path):
    import importlib.util
    from pathlib import Path

    script_path = Path(__file__).resolve().parents[1] / "examples" / "synthetic_to_real.py"
    spec = importlib.util.spec_from_file_location("example_synthetic_to_real", script_path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    out = tmp_path / "s2r"
    assert (
        module.main(["--out", str(out), "--size", "32", "--frames", "12", "--steps", "2", "--detector-steps", "3"]) == 0
    )
    summary = json.loads((out / "summary.json").read_text())
    assert set(summary["run_content"]) >= {"centroid_error_px", "detector_error_px"}
    logged = (out / "run_content" / "metrics.jsonl").read_text()
    assert '"loss/A/content"' in logged and '"loss/B/content"' not in logged
