"""Mixed precision on the CPU: the AMP paths of training and render under autocast, against float32.

CI has no GPU, so the autocast code runs here on the CPU (bf16; fp16 where the
GradScaler matters), at the tiny preset and 32 px. Tolerances (measured on an AMD EPYC
with AVX512-BF16, the margins cover other CPUs' kernels):

- loss terms: at most 2 % or 0.01 from float32 (measured: 0.7 % / 0.005 at most); the
  gradient penalty 5 % (measured 2.1 % with ATEN_CPU_CAPABILITY=default): it reads a steep D's
  input gradient at points mixed from the bf16 fakes, where leaky-ReLU slopes switch, and
  squares the norm's error;
- predictor outputs ([-1, 1]): 0.02 (measured 0.003);
- rendered pixels (0-255): mean 1 level, max 16 (measured: mean 0.45, max 3);
- the warp loss of an output that follows the motion exactly: 0.002 at 256 px under
  bf16 (measured 0.0006: the bf16 rounding of the images; the grid rounded to bf16 gave
  0.011).
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from retarget.config import LossConfig, model_preset
from retarget.nn.content import load_content_model
from retarget.nn.losses import gradient_penalty
from retarget.nn.networks import build_networks
from retarget.nn.objectives import make_objective
from retarget.nn.step import Stepper, make_optimizers
from retarget.nn.warp_loss import add_motion, warp_consistency
from retarget.render.translate import Translator

pytestmark = pytest.mark.kernels  # AMP outputs against float32's (two set-up-only tests ride along)

SIZE = 32
BF16 = torch.bfloat16
TERM_REL, TERM_ABS = 0.02, 0.01
GP_REL = 0.05  # the gradient penalty's (module docstring)
TERMS = ("adv", "cycle", "identity", "recurrent", "recycle", "similarity", "tv", "feature_match", "content", "warp")


class Heat(nn.Module):
    """A tiny content network f: a heat map and a 2-number head."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, stride=2, padding=1)
        self.head = nn.Conv2d(4, 1, 1)

    def forward(self, x: Tensor) -> dict[str, Tensor]:
        h = torch.relu(self.conv(x))
        return {"heat": self.head(h), "xy": h.mean((2, 3))[:, :2]}


def _moving(seed: int) -> Tensor:
    """Smooth textures moving 2 px per frame: ``[2, 3, 3, SIZE, SIZE]`` in [-1, 1]."""
    g = torch.Generator().manual_seed(seed)
    base = F.interpolate(torch.rand(2, 3, 8, 12, generator=g), size=(SIZE, SIZE + 16), mode="bicubic")
    base = base.clamp(0, 1) * 2 - 1
    return torch.stack([base[..., 8 - 2 * t : 8 - 2 * t + SIZE] for t in range(3)], 1).contiguous()


def _steep_discriminators(nets: dict[str, nn.Module]) -> None:
    """Scale each D's last layer up so its gradient norm exceeds 1 and the penalty is not 0."""
    with torch.no_grad():
        for k in ("D_A", "D_B"):
            nets[k].model[-1].weight.mul_(50)


def _objective(tmp_path, **loss):
    torch.manual_seed(0)
    path = tmp_path / "f.pt"
    with warnings.catch_warnings():  # torch >= 2.9 marks TorchScript deprecated
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.jit.script(Heat()).save(str(path))
    f = load_content_model(str(path), torch.device("cpu"), SIZE, None, "minus1_1")
    cfg = model_preset("tiny", size=SIZE)
    torch.manual_seed(0)
    nets = build_networks(cfg)
    _steep_discriminators(nets)
    return nets, make_objective(cfg, LossConfig(**loss), nets, {"A": f, "B": f})


def _close(got: float, want: float, name: str) -> bool:
    """Whether the loss term ``name`` under AMP is within the module docstring's margins of float32."""
    rel = GP_REL if name.endswith("/gp") else TERM_REL
    return abs(got - want) <= max(TERM_ABS, rel * abs(want))


def _all_terms(obj, batch, dtype):
    torch.manual_seed(3)  # the gradient penalty's mixing weights
    with torch.autocast("cpu", dtype=dtype or torch.float32, enabled=dtype is not None):
        g_terms, fakes = obj.generator_terms(batch)
        d_terms = obj.discriminator_terms(batch, fakes)
    return {**g_terms, **d_terms}


def test_every_objective_term_is_float32_and_near_its_fp32_value_under_bf16(tmp_path):
    _, obj = _objective(tmp_path, similarity=1, tv=1, gp=1, feature_match=1, warp=5)
    batch = add_motion({"A": _moving(1), "B": _moving(2)})
    want = _all_terms(obj, batch, None)
    got = _all_terms(obj, batch, BF16)
    assert {k.split("/")[1] for k in got} == {*TERMS, "real", "fake", "gp"}
    assert all(got[f"D_{d}/gp"].item() > 0.01 for d in "AB")  # a term that can differ
    for name, value in got.items():
        assert value.dtype == torch.float32 and torch.isfinite(value), name
        assert _close(value.item(), want[name].item(), name), (name, value.item(), want[name].item())


def _stepper(amp: str, **loss):
    cfg = model_preset("tiny", size=SIZE)
    torch.manual_seed(0)
    nets = build_networks(cfg)
    _steep_discriminators(nets)
    obj = make_objective(cfg, LossConfig(**loss), nets)
    g_opt, d_opt = make_optimizers(nets)
    return nets, Stepper(obj, g_opt, d_opt, amp=amp)


def test_a_bf16_step_updates_every_network_near_the_fp32_step():
    batch = add_motion({"A": _moving(1), "B": _moving(2)})
    _, ref = _stepper("off", gp=1, tv=1)
    torch.manual_seed(5)
    want = ref.step(batch)
    nets, stepper = _stepper("bf16", gp=1, tv=1)
    assert stepper.amp == "bf16" and stepper.scaler is None
    before = {k: [p.detach().clone() for p in m.parameters()] for k, m in nets.items()}
    torch.manual_seed(5)
    got = stepper.step(batch)
    assert set(got) == set(want)
    for name, value in got.items():
        assert np.isfinite(value) and _close(value, want[name], name), (name, value, want[name])
    for k, m in nets.items():
        assert all(not torch.equal(a, p) for a, p in zip(before[k], m.parameters())), f"{k} not updated"
    assert all(p.dtype == torch.float32 for m in nets.values() for p in m.parameters())  # master weights


def test_fp16_on_the_cpu_scales_the_loss_and_keeps_the_gradient_penalty_exact():
    batch = add_motion({"A": _moving(1), "B": _moving(2)})
    _, ref = _stepper("off", gp=1)
    torch.manual_seed(5)
    want = ref.step(batch)
    _, stepper = _stepper("fp16", gp=1)
    assert isinstance(stepper.scaler, torch.amp.GradScaler) and stepper.scaler.is_enabled()  # a CPU scaler
    torch.manual_seed(5)
    got = stepper.step(batch)
    for name, value in got.items():
        assert np.isfinite(value) and _close(value, want[name], name), (name, value, want[name])
    assert want["D_A/gp"] > 0.01
    assert "scaler" in stepper.state_dict()


def test_the_gradient_penalty_does_not_underflow_under_fp16():
    # D's input gradient passes through values below fp16's smallest subnormal (6e-8):
    # in fp16 they round to 0 or 6e-8, and the penalty came out 5.3 instead of 2.9.
    def conv(cin: int, w: float) -> nn.Conv2d:
        c = nn.Conv2d(cin, 1, 1, bias=False)
        nn.init.constant_(c.weight, w)
        return c

    disc = nn.Sequential(conv(3, 1000.0), conv(1, 1000.0), conv(1, 5e-5))
    g = torch.Generator().manual_seed(0)
    real, fake = ((torch.rand(2, 3, SIZE, SIZE, generator=g) * 2 - 1) * 1e-4 for _ in range(2))
    torch.manual_seed(1)
    want = gradient_penalty(disc, real, fake).item()
    torch.manual_seed(1)
    with torch.autocast("cpu", dtype=torch.float16):
        got = gradient_penalty(disc, real, fake)
    assert got.dtype == torch.float32 and want > 1
    # both in float32 on the same shapes (autocast is off inside): equal but for the last bits
    assert got.item() == pytest.approx(want, rel=1e-5)


def test_warp_loss_of_an_output_that_follows_the_motion_stays_near_zero_under_bf16():
    s = 256  # where a grid rounded to bf16 is off by up to half a pixel
    g = torch.Generator().manual_seed(0)
    prev = F.interpolate(torch.rand(2, 3, s // 8, s // 8, generator=g), size=(s, s), mode="bicubic")
    prev = prev.clamp(0, 1) * 2 - 1
    ys, xs = torch.meshgrid(torch.arange(s, dtype=torch.float32), torch.arange(s, dtype=torch.float32), indexing="ij")
    c = (s - 1) / 2  # a slight zoom and a sub-pixel shift
    px, py = c + (xs - c) * 0.99 + 1.3, c + (ys - c) * 0.99 - 0.7
    grid = torch.stack([px / (s - 1) * 2 - 1, py / (s - 1) * 2 - 1], -1).expand(2, s, s, 2).contiguous()
    flow = torch.stack([px - xs, py - ys], -1).expand(2, s, s, 2).contiguous()  # the same motion in pixels
    valid = torch.ones(2, 1, s, s)
    cur = F.grid_sample(prev, grid, mode="bilinear", padding_mode="border", align_corners=True)  # follows exactly
    fp32 = warp_consistency(prev, cur, flow, valid)
    with torch.autocast("cpu", dtype=BF16):
        bf16 = warp_consistency(prev.to(BF16), cur.to(BF16), flow, valid)  # as a generator's bf16 outputs
    assert fp32.item() < 1e-5
    assert bf16.dtype == torch.float32 and bf16.item() < 0.002


def test_the_predictor_under_bf16_is_near_fp32():
    torch.manual_seed(0)
    pred = build_networks(model_preset("tiny", size=SIZE))["P_A"].eval()
    x = _moving(1)[:, :2].flatten(1, 2)
    with torch.no_grad():
        want = pred(x)
        with torch.autocast("cpu", dtype=BF16):
            got = pred(x)
    assert got.dtype == BF16 and got.shape == want.shape
    assert (got.float() - want).abs().max().item() < 0.02


def _generator() -> nn.Module:
    torch.manual_seed(0)
    return build_networks(model_preset("tiny", size=SIZE, model="cyclegan"))["G_AB"].eval()


def _crops(n: int = 3) -> list[np.ndarray]:
    x = _moving(3)[0].add(1).mul(127.5).round().byte().permute(0, 2, 3, 1).numpy()
    return list(x[:n])


def test_the_translator_under_bf16_is_near_fp32():
    net = _generator()
    want = np.stack(Translator(net, "cpu", amp="off")(_crops())).astype(int)
    bf16 = Translator(net, "cpu", amp="bf16")
    assert bf16.amp == "bf16"
    got = np.stack(bf16(_crops())).astype(int)
    assert got.shape == want.shape and got.dtype == want.dtype
    diff = np.abs(got - want)
    assert diff.mean() < 1.0 and diff.max() <= 16, (diff.mean(), diff.max())


def test_translator_auto_follows_the_cpu_and_the_width(monkeypatch):
    wide = build_networks(model_preset("tiny", size=SIZE, model="cyclegan", ngf=16))["G_AB"].eval()
    monkeypatch.setattr("retarget.device.cpu_has_native_bf16", lambda: True)
    assert Translator(wide, "cpu", amp="auto").amp == "bf16"
    # the tiny preset's 8 filters: bf16 kernels are slower than float32 there (docs/training.md)
    assert Translator(_generator(), "cpu", amp="auto").amp == "off"
    assert Translator(_generator(), "cpu", amp="bf16").amp == "bf16"  # forced, it is used
    monkeypatch.setattr("retarget.device.cpu_has_native_bf16", lambda: False)
    assert Translator(wide, "cpu", amp="auto").amp == "off"


def test_translator_channels_last_gives_the_same_frames():
    net = _generator()
    want = Translator(net, "cpu", amp="off", channels_last=False)(_crops())
    last = Translator(_generator(), "cpu", amp="off", channels_last=True)
    assert last.net.model[1].weight.is_contiguous(memory_format=torch.channels_last)
    got = last(_crops())
    # other kernels for the other memory layout: floats that differ in their last bits, 1 uint8 level
    assert max(np.abs(a.astype(int) - b).max() for a, b in zip(got, want)) <= 1


def test_translator_on_cuda_picks_channels_last_and_cudnn_benchmark(monkeypatch):
    monkeypatch.setattr(torch.backends.cudnn, "benchmark", False)
    tr = Translator(_generator(), "cuda", amp="bf16")  # set-up only: nothing runs on the device
    assert torch.backends.cudnn.benchmark and tr.memory_format == torch.channels_last
    assert tr.net.model[1].weight.is_contiguous(memory_format=torch.channels_last)
    assert tr.amp_dtype == BF16
