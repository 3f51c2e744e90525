"""Stepper: every network learns, no wasted D gradients, overfitting, non-finite losses."""

from __future__ import annotations

import pytest
import torch

from retarget.config import LossConfig, model_preset
from retarget.nn.networks import build_networks
from retarget.nn.objectives import make_objective
from retarget.nn.step import NonFiniteLoss, Stepper, make_optimizers
from retarget.nn.pool import ImagePool
from retarget.nn.warp_loss import add_motion

SIZE = 32


def _stepper(model="recycle", lr=2e-4, pool=0, hook=None, **loss):
    cfg = model_preset("tiny", model=model, size=SIZE)
    torch.manual_seed(0)
    nets = build_networks(cfg)
    obj = make_objective(cfg, LossConfig(**loss), nets)
    g_opt, d_opt = make_optimizers(nets, lr=lr)
    pools = {"A": ImagePool(pool, seed=1), "B": ImagePool(pool, seed=2)} if pool else None
    T = 3 if model == "recycle" else 1
    g = torch.Generator().manual_seed(5)
    # smooth images (an upsampled noise field) moving 2 px per frame: a tiny net can fit them
    batch = {}
    for d in "AB":
        first = torch.nn.functional.interpolate(torch.rand(2, 3, 4, 4, generator=g), size=SIZE, mode="bilinear")
        batch[d] = torch.stack([torch.roll(first, 2 * t, -1) for t in range(T)], 1).mul(2).sub(1)
    return nets, Stepper(obj, g_opt, d_opt, pools=pools, grad_hook=hook), add_motion(batch)


@pytest.mark.parametrize("model", ["recycle", "cyclegan"])
def test_one_step_updates_every_network(model):
    nets, stepper, batch = _stepper(model)
    before = {k: [p.detach().clone() for p in m.parameters()] for k, m in nets.items()}
    out = stepper.step(batch)
    assert all(isinstance(v, float) for v in out.values())
    assert out["loss_G"] == pytest.approx(sum(v for k, v in out.items() if k[0] in "AB"), rel=1e-5)
    for k, m in nets.items():
        changed = [not torch.equal(a, p) for a, p in zip(before[k], m.parameters())]
        assert all(changed), f"{k}: {changed.count(False)} parameter tensors unchanged"


def test_no_discriminator_gradients_in_generator_pass():
    seen = []

    def hook(which, params):
        nets_ = stepper.nets
        d_grads = [p.grad for k, m in nets_.items() if k.startswith("D_") for p in m.parameters()]
        g_grads = [p.grad for k, m in nets_.items() if not k.startswith("D_") for p in m.parameters()]
        seen.append((which, all(g is None for g in d_grads), all(g is not None for g in g_grads), len(params)))

    nets, stepper, batch = _stepper(hook=hook)
    stepper.step(batch)
    n_g = sum(1 for k, m in nets.items() if not k.startswith("D_") for _ in m.parameters())
    n_d = sum(1 for k, m in nets.items() if k.startswith("D_") for _ in m.parameters())
    assert seen[0] == ("G", True, True, n_g)  # D untouched during the G backward
    assert seen[1][0] == "D" and not seen[1][1] and seen[1][3] == n_d
    assert all(p.requires_grad for m in nets.values() for p in m.parameters())


@pytest.mark.slow
def test_overfitting_one_batch_lowers_recurrent_and_cycle():
    _, stepper, batch = _stepper(lr=2e-3)
    first = stepper.step(batch)
    for _ in range(40):
        last = stepper.step(batch)
    for term in ("A/recurrent", "B/recurrent", "A/cycle", "B/cycle", "A/recycle"):
        assert last[term] < 0.7 * first[term], (term, first[term], last[term])


def test_non_finite_loss_raises_before_any_update():
    nets, stepper, batch = _stepper()
    batch["A"][0, 0, 0, 0, 0] = float("nan")
    before = [p.detach().clone() for m in nets.values() for p in m.parameters()]
    with pytest.raises(NonFiniteLoss) as err:
        stepper.step(batch)
    assert "A/cycle" in err.value.terms and "loss_G" in err.value.terms
    after = [p.detach() for m in nets.values() for p in m.parameters()]
    assert all(torch.equal(a, b) for a, b in zip(before, after))


def test_pools_feed_discriminator_and_round_trip():
    _, stepper, batch = _stepper(pool=4)
    stepper.step(batch)
    assert len(stepper.pools["A"]) == 4  # 6 fakes offered, 4 kept
    state = stepper.state_dict()
    _, other, _ = _stepper(pool=4)
    other.load_state_dict(state)
    assert torch.equal(other.pools["B"].state_dict()["images"], state["pools"]["B"]["images"])
