"""What only a CUDA GPU can show: the generator, a training step and the RNG state on the device.

Every test here is marked ``cuda`` and skipped without a GPU; benchmarks/gpu_check.py
runs them with ``-m cuda`` on a GPU machine and fails on any skip.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from retarget.config import LossConfig, model_preset
from retarget.nn.networks import build_generator, build_networks
from retarget.nn.objectives import make_objective
from retarget.nn.step import Stepper, make_optimizers
from retarget.render.translate import Translator
from retarget.run import checkpoint as ckpt

pytestmark = [
    pytest.mark.cuda,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU (torch.cuda.is_available() is False)"),
]


def test_generator_on_the_gpu_matches_the_cpu():
    torch.manual_seed(0)
    net = build_generator(model_preset("tiny", size=64)).eval()
    x = torch.rand(2, 3, 64, 64) * 2 - 1
    with torch.no_grad():
        want = net(x)
        got = net.to("cuda")(x.to("cuda")).cpu()
    # TF32 convolutions on Ampere and later: close, not equal
    assert (got - want).abs().max().item() < 0.05 * want.abs().max().item()


@pytest.mark.parametrize("amp", ["off", "bf16", "fp16"])
def test_a_training_step_on_the_gpu_is_finite_and_moves_the_weights(amp):
    if amp == "bf16" and not torch.cuda.is_bf16_supported():
        pytest.skip("this GPU has no native bf16")  # a GPU check run on such a card names this skip
    torch.manual_seed(0)
    cfg = model_preset("tiny", size=32)
    nets = {k: v.to("cuda") for k, v in build_networks(cfg).items()}
    g_opt, d_opt = make_optimizers(nets)
    stepper = Stepper(
        make_objective(cfg, LossConfig(warp=0.0), nets), g_opt, d_opt, amp=amp, device=torch.device("cuda")
    )
    before = {k: p.detach().clone() for k, p in nets["G_AB"].named_parameters()}
    batch = {d: torch.rand(1, 3, 3, 32, 32, device="cuda") * 2 - 1 for d in "AB"}
    losses = [stepper.step(batch) for _ in range(2)]
    assert all(math.isfinite(v) for step in losses for v in step.values())
    assert any(not torch.equal(before[k], p) for k, p in nets["G_AB"].named_parameters())


def test_translator_on_the_gpu_keeps_count_shape_and_picture():
    torch.manual_seed(0)
    net = build_generator(model_preset("tiny", size=32)).eval()
    crops = [np.random.default_rng(i).integers(0, 256, (32, 32, 3), dtype=np.uint8) for i in range(3)]
    cpu = Translator(net, "cpu")(crops)
    gpu = Translator(build_generator(model_preset("tiny", size=32)).eval(), "cuda")  # other weights: a control
    gpu.net.load_state_dict(net.state_dict())
    out = gpu(crops)
    assert len(out) == 3 and all(o.shape == (32, 32, 3) and o.dtype == np.uint8 for o in out)
    assert max(np.abs(o.astype(int) - c.astype(int)).mean() for o, c in zip(out, cpu)) < 4


def test_the_current_gpus_rng_state_round_trips_through_a_checkpoint(tmp_path):
    torch.cuda.manual_seed(1)
    torch.save({"rng": ckpt.rng_state()}, tmp_path / "s.pt")
    want = torch.rand(4, device="cuda")
    torch.cuda.manual_seed(2)
    ckpt.set_rng_state(ckpt.load_state(tmp_path / "s.pt")["rng"])
    assert torch.equal(torch.rand(4, device="cuda"), want)
