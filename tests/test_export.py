"""``retarget export`` and ``render --engine onnx``: the translator in ONNX, within tolerance of torch."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import make_video, tiny_pair_run

ort = pytest.importorskip("onnxruntime")
pytest.importorskip("onnx")

from retarget.config import ExportConfig, FaceConfig, RenderConfig, model_preset, replace  # noqa: E402
from retarget.errors import RetargetError  # noqa: E402
from retarget.render.export import OnnxTranslator, export_run, read_metadata  # noqa: E402
from retarget.nn.conditional import FixedTarget  # noqa: E402
from retarget.nn.networks import build_networks  # noqa: E402
from retarget.render.render import render  # noqa: E402
from retarget.render.translate import Translator  # noqa: E402
from retarget.run.checkpoint import save_weights  # noqa: E402
from retarget.video.reader import probe  # noqa: E402

SIZE = 16
#: Largest difference allowed between onnxruntime's and torch's float32 outputs, in the
#: [-1, 1] range. The two run the same float32 graph with differently ordered sums
#: (measured differences are about 1e-6); 1e-4 is 0.0064 of one 8-bit level (2/255), so
#: after rounding to pixels the two agree exactly except where a value lies within that
#: distance of a rounding edge, and then by one level.
TOLERANCE = 1e-4


@pytest.fixture(scope="module")
def pair(tmp_path_factory) -> Path:
    """A tiny untrained pair: A whole frames (centre squares, dataset "day"), B faces ("night")."""
    return tiny_pair_run(tmp_path_factory.mktemp("models") / "pair", SIZE, names=("day", "night"), step=7)


@pytest.fixture(scope="module")
def multi(tmp_path_factory) -> Path:
    """A tiny untrained three-domain run (x, y, z)."""
    folder = tmp_path_factory.mktemp("models") / "multi"
    folder.mkdir()
    cfg = replace(model_preset("tiny", size=SIZE), domains=3, condition="modulate")
    torch.manual_seed(0)
    nets = build_networks(cfg)
    data = {n: {"align": "none", "size": SIZE, "face": None, "name": n} for n in "xyz"}
    save_weights(folder / "weights.safetensors", nets, cfg, step=3, data=data, domains=("x", "y", "z"))
    return folder


def _generator(run: Path, name: str) -> torch.nn.Module:
    from retarget.run import load_networks, open_run

    loaded = open_run(str(run))
    load_networks(loaded, (name,), "cpu")
    return loaded.networks[name]


def _ort_run(path: Path, x: torch.Tensor) -> np.ndarray:
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(None, {"input": x.numpy()})[0]


def test_export_matches_torch_at_any_size_and_batch(tmp_path, pair):
    out = tmp_path / "look.onnx"
    summary = export_run(ExportConfig(str(out), model=str(pair)))
    assert out.is_file() and summary.bytes == out.stat().st_size
    net = _generator(pair, "G_AB")
    torch.manual_seed(1)
    for shape in [(1, 3, SIZE, SIZE), (2, 3, 20, 28), (3, 3, 36, 24)]:  # H, W dynamic (multiples of 4)
        x = torch.rand(shape) * 2 - 1
        with torch.no_grad():
            expected = net(x).numpy()
        got = _ort_run(out, x)
        assert got.shape == expected.shape
        assert np.abs(got - expected).max() < TOLERANCE, shape


def test_the_metadata_says_how_to_feed_the_file(tmp_path, pair):
    out = tmp_path / "back.onnx"
    export_run(ExportConfig(str(out), model=str(pair), direction="b2a"))
    meta = read_metadata(out)
    assert meta["direction"] == "b2a" and meta["network"] == "G_BA"
    assert (meta["source"], meta["target"]) == ("night", "day")
    assert json.loads(meta["domains"]) == ["day", "night"]
    assert meta["align"] == "face" and json.loads(meta["face"])["margin"] == FaceConfig().margin
    assert meta["size"] == str(SIZE) and meta["step"] == "7" and meta["multiple"] == "4"
    assert "127.5" in meta["normalization"] and meta["layout"] == "NCHW RGB"
    from retarget import __version__

    assert meta["retarget_version"] == __version__


def test_a_multi_domain_run_exports_the_generator_told_its_target(tmp_path, multi):
    out = tmp_path / "z.onnx"
    export_run(ExportConfig(str(out), model=str(multi), to_domain="z"))
    meta = read_metadata(out)
    assert meta["target"] == "z" and meta["network"] == "G" and json.loads(meta["domains"]) == ["x", "y", "z"]
    x = torch.rand(2, 3, 24, 20) * 2 - 1
    with torch.no_grad():
        to_z = FixedTarget(_generator(multi, "G"), 2)(x).numpy()
        to_y = FixedTarget(_generator(multi, "G"), 1)(x).numpy()
    got = _ort_run(out, x)
    assert np.abs(got - to_z).max() < TOLERANCE
    assert np.abs(got - to_y).max() > 10 * TOLERANCE  # the target is really fixed to z, not any domain
    with pytest.raises(RetargetError, match="--to w"):
        export_run(ExportConfig(str(tmp_path / "w.onnx"), model=str(multi), to_domain="w"))


def test_the_onnx_translator_gives_torchs_pixels(tmp_path, pair):
    out = tmp_path / "look.onnx"
    export_run(ExportConfig(str(out), model=str(pair)))
    rng = np.random.default_rng(0)
    crops = [rng.integers(0, 256, (20, 24, 3), dtype=np.uint8) for _ in range(3)]
    ours = OnnxTranslator(out)(crops)
    theirs = Translator(_generator(pair, "G_AB"), "cpu", amp="off")(crops)
    for a, b in zip(ours, theirs):
        assert a.shape == b.shape and a.dtype == np.uint8
        assert np.abs(a.astype(int) - b.astype(int)).max() <= 1  # see TOLERANCE
    assert OnnxTranslator(out)([]) == []


def test_render_with_the_onnx_engine_keeps_the_frames(tmp_path, pair, monkeypatch):
    src = make_video(tmp_path / "in.mp4", frames=6, size=(40, 24))
    calls = []
    real_call = OnnxTranslator.__call__
    monkeypatch.setattr(
        OnnxTranslator, "__call__", lambda self, crops: calls.append(len(crops)) or real_call(self, crops)
    )
    outs = {}
    for engine in ("torch", "onnx"):
        outs[engine] = tmp_path / f"{engine}.mp4"
        # lossless: two lossy encodes of the same frames need not agree (libx264's decisions
        # varied under CPU load, 4.5 levels apart on average for this clip)
        cfg = RenderConfig(str(src), str(outs[engine]), model=str(pair), device="cpu", stabilize=0, engine=engine,
                           amp="off" if engine == "torch" else "auto", crf=0)  # fmt: skip
        summary = render(cfg)
        assert summary.frames == 6 and summary.precision == "fp32"
    assert probe(outs["onnx"]).frame_count == 6
    from retarget.video.reader import VideoReader

    a = np.stack([f.image for f in VideoReader(outs["torch"])]).astype(float)
    b = np.stack([f.image for f in VideoReader(outs["onnx"])]).astype(float)
    source = np.stack([f.image for f in VideoReader(src)]).astype(float)
    assert sum(calls) == 6  # onnxruntime translated every frame (the torch render not one)
    # pixels one level apart at most before the encoder (lossless, but YUV 4:2:0 may spread a level a little)
    assert a.shape == b.shape and np.abs(a - b).mean() < 0.5
    assert np.abs(a - source).mean() > 5  # and the frames were translated: the comparison means something


def test_engine_onnx_refuses_a_precision_and_needs_the_extra(tmp_path, pair, monkeypatch):
    src = make_video(tmp_path / "in.mp4", frames=2, size=(24, 16))
    base = dict(input=str(src), output=str(tmp_path / "o.mp4"), model=str(pair), device="cpu", engine="onnx")
    with pytest.raises(RetargetError, match="^--amp bf16: --engine onnx runs the generator in float32"):
        render(RenderConfig(**base, amp="bf16"))
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # as if it were not installed
    with pytest.raises(RetargetError, match=r"^--engine onnx needs onnx and onnxruntime .*retarget\[onnx\]"):
        render(RenderConfig(**base))
    with pytest.raises(RetargetError, match=r"^ONNX export needs"):
        export_run(ExportConfig(str(tmp_path / "x.onnx"), model=str(pair)))
    assert not (tmp_path / "o.mp4").exists() and not (tmp_path / "x.onnx").exists()


def test_cli_export_and_its_output_checks(tmp_path, pair):
    from typer.testing import CliRunner

    from retarget.cli import app

    runner = CliRunner()
    out = tmp_path / "look.onnx"
    ok = runner.invoke(app, ["export", str(pair), "-o", str(out)])
    assert ok.exit_code == 0, ok.output
    assert read_metadata(out)["direction"] == "a2b"
    again = runner.invoke(app, ["export", str(pair), "-o", str(out)])
    assert again.exit_code == 1 and "already exists (pass --overwrite" in again.output
    assert runner.invoke(app, ["export", str(pair), "-o", str(out), "--overwrite", "--to", "day"]).exit_code == 0
    assert read_metadata(out)["direction"] == "b2a"
    inside = runner.invoke(app, ["export", str(pair), "-o", str(pair / "x.onnx")])
    assert inside.exit_code == 1 and "lies inside the input" in inside.output
    suffix = runner.invoke(app, ["export", str(pair), "-o", str(tmp_path / "x.pt")])
    assert suffix.exit_code == 1 and "ending in .onnx" in suffix.output
    assert runner.invoke(app, ["export", str(pair)]).exit_code == 2
    past = runner.invoke(app, ["export", str(pair), "-o", str(tmp_path / "new.onnx"), "--opset", "999"])
    assert past.exit_code == 1 and "--opset 999: torch" in past.output and "graph" not in past.output
    assert len(past.output.strip().splitlines()) == 1 and not (tmp_path / "new.onnx").exists()
