"""Objectives: which terms exist, that they follow their formulas, and the call budget."""

from __future__ import annotations

import pytest
import torch

from retarget.config import LossConfig, model_preset
from retarget.nn.losses import GanLoss, l1
from retarget.nn.networks import build_networks
from retarget.nn.objectives import make_objective
from retarget.nn.warp_loss import add_motion

SIZE = 32


def _setup(model="recycle", seed=0, **loss):
    cfg = model_preset("tiny", model=model, size=SIZE)
    torch.manual_seed(seed)
    nets = build_networks(cfg)
    T = 3 if model == "recycle" else 1
    g = torch.Generator().manual_seed(seed + 1)
    batch = add_motion({d: torch.rand(2, T, 3, SIZE, SIZE, generator=g) * 2 - 1 for d in "AB"})
    return cfg, nets, make_objective(cfg, LossConfig(**loss), nets), batch


def test_default_recycle_terms_include_identity_and_warp():
    _, _, obj, batch = _setup()
    terms, fakes = obj.generator_terms(batch)
    kinds = ("adv", "cycle", "recurrent", "recycle", "identity", "warp")
    assert set(terms) == {f"{d}/{t}" for d in "AB" for t in kinds}
    assert obj.w.warp == pytest.approx(20.0)  # docs/training.md: the default after the benchmark
    assert all(v.dim() == 0 for v in terms.values())
    # G(x_t), G(x_t+1), P(G(x_t), G(x_t+1)) per sample, detached, in tanh range
    for d in "AB":
        assert fakes[d].shape == (6, 3, SIZE, SIZE) and not fakes[d].requires_grad
        assert fakes[d].abs().max() <= 1


def test_default_cyclegan_terms_include_identity():
    _, _, obj, batch = _setup("cyclegan")
    terms, fakes = obj.generator_terms(batch)
    assert set(terms) == {f"{d}/{t}" for d in "AB" for t in ("adv", "cycle", "identity")}
    assert fakes["A"].shape == (2, 3, SIZE, SIZE)
    assert obj.w.identity == pytest.approx(5.0)  # 0.5 x cycle 10


@pytest.mark.kernels
@pytest.mark.parametrize(
    "model,identity,present",
    [
        ("recycle", None, True),
        ("recycle", 0.0, False),
        ("recycle", 0.5, True),
        ("cyclegan", None, True),
        ("cyclegan", 0.0, False),
    ],
)
def test_identity_present_exactly_when_weight_positive(model, identity, present):
    _, nets, obj, batch = _setup(model, identity=identity)
    terms, _ = obj.generator_terms(batch)
    assert ("A/identity" in terms) == present and ("B/identity" in terms) == present
    if present:
        # really computed: |a - G_BA(a)|_1, weighted
        a = batch["A"][:, : max(obj.p, 1)].flatten(0, 1)  # the translated frames
        # rel: by hand, in other batches than the objective's: float32 sums that differ in their last bits
        expect = obj.w.identity * l1(nets["G_BA"](a), a)
        assert terms["A/identity"].item() == pytest.approx(expect.item(), rel=1e-4)
        assert terms["A/identity"].requires_grad


def test_zero_weights_remove_terms():
    _, _, obj, batch = _setup(cycle=0.0, recycle=0.0, adv=0.0, warp=0.0)
    terms, fakes = obj.generator_terms(batch)
    assert set(terms) == {"A/recurrent", "B/recurrent"}
    assert fakes["B"].shape[0] == 6  # D still gets its fakes


@pytest.mark.kernels
def test_optional_terms_follow_their_formulas():
    _, nets, obj, batch = _setup(similarity=1.5, tv=0.5, gp=10.0)
    terms, fakes = obj.generator_terms(batch)
    assert {"A/similarity", "B/similarity", "A/tv", "B/tv"} <= set(terms)
    rel = dict(rel=1e-4)  # by hand, in other batches than the objective's: float32 sums that differ in their last bits
    a = batch["A"][:, :2].flatten(0, 1)  # x_t, x_t+1: the translated frames
    fake_b = nets["G_AB"](a)
    # similarity: 1.5 * mean |G_AB(a) - a|
    assert terms["A/similarity"].item() == pytest.approx(1.5 * (fake_b - a).abs().mean().item(), **rel)
    # tv: 0.5 * (mean |vertical neighbour difference| + mean |horizontal neighbour difference|)
    tv = (fake_b[..., 1:, :] - fake_b[..., :-1, :]).abs().mean() + (fake_b[..., 1:] - fake_b[..., :-1]).abs().mean()
    assert terms["A/tv"].item() == pytest.approx(0.5 * tv.item(), **rel)
    # gp: make D_A steep enough to be penalised, then redo the penalty by hand with the same draws
    last = [m for m in nets["D_A"].modules() if isinstance(m, torch.nn.Conv2d)][-1]
    with torch.no_grad():
        last.weight.mul_(8.0)
    torch.manual_seed(11)
    d_terms = obj.discriminator_terms(batch, fakes)
    assert set(d_terms) == {f"D_{d}/{t}" for d in "AB" for t in ("real", "fake", "gp")}
    torch.manual_seed(11)
    eps = torch.rand(6, 1, 1, 1)  # D_A's penalty draws first: one mixing weight per sample
    real, fake = batch["A"].flatten(0, 1), fakes["A"]
    x = (eps * real + (1 - eps) * fake).requires_grad_(True)
    (grad,) = torch.autograd.grad(nets["D_A"](x).flatten(1).mean(1).sum(), x)
    norms = grad.flatten(1).norm(dim=1)
    assert (norms > 1).any()  # the case where the penalty is not zero
    gp = (norms - 1).clamp(min=0).square().mean()
    assert d_terms["D_A/gp"].item() == pytest.approx(10.0 * gp.item(), **rel)
    assert d_terms["D_A/gp"].requires_grad
    # the LSGAN halves: 0.5 * mean (D(fake) - 0)^2
    assert d_terms["D_A/fake"].item() == pytest.approx(0.5 * nets["D_A"](fake).square().mean().item(), **rel)


@pytest.mark.kernels
def test_terms_follow_their_formulas():
    _, nets, obj, batch = _setup()
    terms, fakes = obj.generator_terms(batch)
    a, b = batch["A"], batch["B"]
    G, P, D = nets["G_AB"], nets["P_B"], nets["D_B"]
    fb = [G(a[:, t]) for t in range(2)]
    pred = P(torch.cat([fb[0], fb[1]], 1))
    rel = dict(rel=1e-4)  # by hand, in other batches than the objective's: float32 sums that differ in their last bits
    assert terms["A/recycle"].item() == pytest.approx(10 * l1(nets["G_BA"](pred), a[:, 2]).item(), **rel)
    cyc = sum(l1(nets["G_BA"](fb[t]), a[:, t]) for t in range(2)) / 2  # on x_t, x_t+1
    assert terms["A/cycle"].item() == pytest.approx(10 * cyc.item(), **rel)
    rec = l1(P(torch.cat([b[:, 0], b[:, 1]], 1)), b[:, 2])
    assert terms["B/recurrent"].item() == pytest.approx(10 * rec.item(), **rel)
    gan = GanLoss("lsgan")
    adv = sum(gan.generator(D(x)) for x in (fb[0], fb[1], pred))  # one loss per image kind
    assert terms["A/adv"].item() == pytest.approx(adv.item(), **rel)
    # D sees every real frame and the given fakes
    d_terms = obj.discriminator_terms(batch, fakes)
    real = 0.5 * gan.real(nets["D_A"](a.flatten(0, 1)))
    assert d_terms["D_A/real"].item() == pytest.approx(real.item(), **rel)


@pytest.mark.kernels
def test_directions_are_symmetric():
    # swapping the roles of A and B (nets and data) swaps the term names, not the values
    cfg, nets, obj, batch = _setup(identity=1.0, similarity=1.0)
    swap = {"G_AB": "G_BA", "G_BA": "G_AB", "D_A": "D_B", "D_B": "D_A", "P_A": "P_B", "P_B": "P_A"}
    obj2 = make_objective(cfg, obj.loss_cfg, {swap[k]: v for k, v in nets.items()})
    flip = lambda k: ("B" if k[0] == "A" else "A") + k[1:]  # noqa: E731
    t1, _ = obj.generator_terms(batch)
    t2, _ = obj2.generator_terms({flip(k): v for k, v in batch.items()})
    assert set(map(flip, t1)) == set(t2)
    for k, v in t1.items():  # rel: the same sums in another order (the other direction first)
        assert t2[flip(k)].item() == pytest.approx(v.item(), rel=1e-4)


def test_each_network_called_once_per_stage():
    _, nets, obj, batch = _setup(identity=1.0)
    calls = {k: [] for k in nets}
    for k, m in nets.items():
        m.register_forward_hook(lambda mod, inp, out, k=k: calls[k].append(inp[0].shape[0]))
    terms, fakes = obj.generator_terms(batch)
    # G_AB: x_t, x_t+1 of A, then 2 cycle fakes + 1 prediction + 2 identity frames of B
    assert calls["G_AB"] == [4, 10] and calls["G_BA"] == [4, 10]
    assert calls["P_A"] == [4] and calls["P_B"] == [4]  # fake pairs and real pairs together
    assert calls["D_A"] == [6] and calls["D_B"] == [6]
    obj.discriminator_terms(batch, fakes)
    assert calls["D_A"] == [6, 12]  # 6 real frames and 6 fakes in one call


def test_bad_batch_shape():
    _, _, obj, batch = _setup()
    with pytest.raises(ValueError, match=r"\[B, 3, 3, H, W\]"):
        obj.generator_terms({"A": batch["A"][:, :2], "B": batch["B"]})


def test_visuals():
    _, _, obj, batch = _setup()
    v = obj.visuals(batch)
    assert {"A/fake_0", "A/pred", "A/recycled", "A/next", "B/rec"} <= set(v)
    assert all(x.shape == (2, 3, SIZE, SIZE) and not x.requires_grad for x in v.values())


# -- feature matching (DIAT) ------------------------------------------------------


def _blocks(D, x, k=2):
    """Outputs of D's first k blocks, by hand from its layers."""
    out, h = [], x
    for i, layer in enumerate(D.model):
        h = layer(h)
        if i in D.block_ends[:k]:
            out.append(h)
    return out


@pytest.mark.kernels
@pytest.mark.parametrize("model", ["recycle", "cyclegan"])
@pytest.mark.parametrize("weight", [0.0, 2.0])
def test_feature_match_present_exactly_when_weight_positive(model, weight):
    _, nets, obj, batch = _setup(model, feature_match=weight)
    terms, _ = obj.generator_terms(batch)
    assert ("A/feature_match" in terms) == (weight > 0) and ("B/feature_match" in terms) == (weight > 0)
    if weight:
        # mean over D_B's first two blocks of |D_B(a) - D_B(G_AB(a))|_1 on the translated frames
        a = batch["A"][:, : max(obj.p, 1)].flatten(0, 1)
        fake, real = _blocks(nets["D_B"], nets["G_AB"](a)), _blocks(nets["D_B"], a)
        # rel: by hand, in other batches than the objective's: float32 sums that differ in their last bits
        expect = weight * sum(l1(f, r) for f, r in zip(fake, real)) / 2
        assert terms["A/feature_match"].item() == pytest.approx(expect.item(), rel=1e-4)
        assert terms["A/feature_match"].requires_grad
        # the adversarial term is the same whether D also returned its features (rel: the same layers on
        # the same shapes; 1e-5 spares only last bits)
        _, _, plain, _ = _setup(model)
        assert terms["A/adv"].item() == pytest.approx(plain.generator_terms(batch)[0]["A/adv"].item(), rel=1e-5)


def test_feature_match_call_budget():
    _, nets, obj, batch = _setup(feature_match=1.0)
    calls = {k: [] for k in nets}
    for k, m in nets.items():
        m.register_forward_hook(lambda mod, inp, out, k=k: calls[k].append(inp[0].shape[0]))
    obj.generator_terms(batch)
    # one D_B call on the 6 fakes (scores and features together), one cut-short call on the 4 real frames
    assert calls["D_B"] == [6, 4] and calls["D_A"] == [6, 4]


def test_feature_match_without_adversarial_term_uses_only_the_translations():
    _, nets, obj, batch = _setup(adv=0.0, feature_match=1.0)
    terms, _ = obj.generator_terms(batch)
    assert "A/adv" not in terms and terms["A/feature_match"].item() > 0


def test_feature_match_falls_when_overfitting_one_batch():
    from retarget.nn.step import Stepper, make_optimizers

    # G is trained on the feature term alone, while D keeps learning (its features move)
    cfg, nets, obj, batch = _setup("cyclegan", adv=0.0, cycle=0.0, feature_match=1.0)
    stepper = Stepper(obj, *make_optimizers(nets, lr=1e-3))
    values = [stepper.step(batch)["A/feature_match"] for _ in range(30)]
    assert sum(values[-3:]) < 0.6 * sum(values[:3]), values


def _moving_triplets(n=2, shift=2):
    """Smooth random textures moving right by ``shift`` px per frame: [n, 3, 3, SIZE, SIZE] in [-1, 1]."""
    g = torch.Generator().manual_seed(7)
    base = torch.nn.functional.interpolate(
        torch.rand(n, 3, 8, 8 + 4, generator=g), size=(SIZE, SIZE + 16), mode="bicubic"
    )
    base = base.clamp(0, 1) * 2 - 1
    frames = [base[..., 8 - t * shift : 8 - t * shift + SIZE] for t in range(3)]
    return torch.stack(frames, 1).contiguous()


def test_warp_consistency_is_zero_for_motion_following_output_and_positive_for_flicker():
    from retarget.nn.warp_loss import warp_consistency

    x = _moving_triplets()
    batch = add_motion({"A": x})
    flow, valid = batch["A.flow"][:, 0], batch["A.valid"][:, 0]
    assert valid.mean() > 0.5  # most pixels of a smooth translation are reliable
    # a fixed colour map follows the source's motion: near-zero error
    steady = [-x[:, t] * 0.5 for t in range(2)]
    # the same map plus per-frame noise flickers
    g = torch.Generator().manual_seed(3)
    noisy = [s + 0.2 * torch.randn(s.shape, generator=g) for s in steady]
    e_steady = warp_consistency(steady[0], steady[1], flow, valid).item()
    e_noisy = warp_consistency(noisy[0], noisy[1], flow, valid).item()
    assert e_steady < 0.05 and e_noisy > 3 * e_steady


def test_the_step_computes_no_flow_and_asks_for_the_motion():
    import retarget.video.flow as flow_mod

    _, _, obj, batch = _setup(warp=2.0)
    calls = []
    real = flow_mod.FlowEstimator.__call__
    flow_mod.FlowEstimator.__call__ = lambda self, a, b: calls.append(1) or real(self, a, b)
    try:
        terms, _ = obj.generator_terms(batch)
        assert "A/warp" in terms and not calls  # the motion came with the batch
        bare = {k: v for k, v in batch.items() if "." not in k}
        with pytest.raises(ValueError, match="add_motion"):
            obj.generator_terms(bare)
        assert not calls
    finally:
        flow_mod.FlowEstimator.__call__ = real


def test_warp_term_only_for_recycle_and_trains_the_generator():
    _, nets, obj, _ = _setup(warp=2.0)
    batch = add_motion({d: _moving_triplets() for d in "AB"})
    terms, _ = obj.generator_terms(batch)
    assert {"A/warp", "B/warp"} <= set(terms) and terms["A/warp"].item() > 0
    terms["A/warp"].backward()
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in nets["G_AB"].parameters())
    _, _, cyc, cbatch = _setup("cyclegan", warp=2.0)
    assert cyc.w.warp == 0 and not any(k.endswith("/warp") for k in cyc.generator_terms(cbatch)[0])
