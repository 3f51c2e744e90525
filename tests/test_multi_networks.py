"""Multi-domain networks: names, shapes, label plumbing; pairwise configs unchanged."""

from __future__ import annotations

import pytest
import torch

from retarget.config import ModelConfig, from_dict, model_preset, replace, to_dict
from retarget.nn.conditional import ConditionalGenerator, DomainDiscriminator, label_maps
from retarget.nn.networks import build_networks, check_size, count_parameters

SIZE = 32


def _cfg(domains=3, model="recycle", condition="modulate", **kw) -> ModelConfig:
    return replace(model_preset("tiny", model=model, size=SIZE, **kw), domains=domains, condition=condition)


def _nets(seed=0, **kw):
    torch.manual_seed(seed)
    return build_networks(_cfg(**kw))


def test_pairwise_config_builds_todays_networks_and_old_configs_load_as_pairwise():
    old = {k: v for k, v in to_dict(model_preset("tiny", size=SIZE)).items() if k not in ("domains", "condition")}
    cfg = from_dict(ModelConfig, old)  # a checkpoint's config from before the fields existed
    assert cfg.domains == 0
    torch.manual_seed(0)
    nets = build_networks(cfg)
    assert list(nets) == ["G_AB", "G_BA", "D_A", "D_B", "P_A", "P_B"]
    # the very weights of today's pairwise model: the multi fields change nothing at domains 0
    torch.manual_seed(0)
    same = build_networks(model_preset("tiny", size=SIZE))
    for k in nets:
        for a, b in zip(nets[k].state_dict().values(), same[k].state_dict().values()):
            assert torch.equal(a, b)


@pytest.mark.parametrize("model,keys", [("recycle", ["G", "D", "P"]), ("cyclegan", ["G", "D"])])
def test_multi_networks_names_and_shapes(model, keys):
    nets = _nets(model=model)
    assert list(nets) == keys
    x = torch.rand(2, 3, SIZE, SIZE) * 2 - 1
    c = torch.tensor([0, 2])
    y = nets["G"](x, c)
    assert y.shape == x.shape and y.abs().max() <= 1
    scores, logits = nets["D"](x)
    assert scores.shape == (2, 1, 6, 6) and logits.shape == (2, 3) and logits.dtype == torch.float32
    # the classifier averages its patches: any frame size gives n logits per image
    assert nets["D"](torch.rand(2, 3, 48, 64))[1].shape == (2, 3)
    if model == "recycle":
        assert nets["P"](torch.cat([x, x], 1), c).shape == x.shape


def test_domains_must_be_zero_or_at_least_two():
    for bad in (1, -1):
        with pytest.raises(ValueError, match="domains"):
            check_size(_cfg(domains=bad))
    check_size(_cfg(domains=2))


@pytest.mark.kernels
@pytest.mark.parametrize("condition", ["concat", "modulate"])
def test_label_plumbing(condition):
    nets = _nets(condition=condition)
    G, P = nets["G"], nets["P"]
    x = torch.rand(2, 3, SIZE, SIZE) * 2 - 1
    zero, one = torch.zeros(2, dtype=torch.long), torch.ones(2, dtype=torch.long)
    with torch.no_grad():
        a, a2, b = G(x, zero), G(x, zero), G(x, one)
        # a different target changes the output, and not only at the border
        assert (a - b).abs().mean() > 1e-3
        assert (a - b)[..., 8:-8, 8:-8].abs().mean() > 1e-3
        assert torch.equal(a, a2)  # the same label twice: the same output
        # each sample follows its own label (instance norm is per sample)
        mixed = G(x, torch.tensor([0, 1]))
        # another batch than a's and b's (kernels may differ in the last bits); two labels differ by > 1e-3
        assert torch.allclose(mixed[0], a[0], atol=1e-5) and torch.allclose(mixed[1], b[1], atol=1e-5)
        pair = torch.cat([x, x.flip(-1)], 1)
        assert (P(pair, zero) - P(pair, one)).abs().mean() > 1e-4
        assert torch.equal(P(pair, zero), P(pair, zero))


@pytest.mark.kernels
def test_concat_labels_survive_the_first_instance_norm_only_with_zero_padding():
    # why the label maps are zero-padded (retarget/nn/conditional.py): reflection-padded
    # constant maps add a constant per channel, which the instance norm removes exactly
    torch.manual_seed(0)
    G = ConditionalGenerator(3, "concat", ngf=8, blocks=1)
    x = torch.rand(1, 3, SIZE, SIZE) * 2 - 1
    pad = torch.nn.functional.pad(x, (3, 3, 3, 3), mode="reflect")

    def first_norm(c: int, maps_pad: str) -> torch.Tensor:
        maps = label_maps(torch.tensor([c]), 3, SIZE, SIZE)
        maps = torch.nn.functional.pad(maps, (3, 3, 3, 3), mode=maps_pad)
        return G.layers[1](G.layers[0](torch.cat([pad, maps], 1)))

    with torch.no_grad():
        assert (first_norm(0, "reflect") - first_norm(1, "reflect")).abs().max() < 1e-4
        assert (first_norm(0, "constant") - first_norm(1, "constant")).abs().max() > 1e-2


def test_parameter_counts_of_the_conditions():
    # concat: n label channels more in the first 7x7 conv; modulate: a scale and a shift
    # per domain for every normalised channel (ngf, 2ngf, 4ngf down; 2 x 4ngf per block; 2ngf, ngf up)
    n, ngf, blocks = 3, 8, 2
    plain = count_parameters(build_networks(model_preset("tiny", size=SIZE))["G_AB"])
    concat = count_parameters(ConditionalGenerator(n, "concat", ngf, blocks))
    modulate = count_parameters(ConditionalGenerator(n, "modulate", ngf, blocks))
    assert concat - plain == n * ngf * 49
    assert modulate - plain == 2 * n * ngf * (10 + 8 * blocks)
    D = DomainDiscriminator(n, 3, 8, 2)
    assert count_parameters(D) == count_parameters(build_networks(model_preset("tiny", size=SIZE))["D_A"]) + (
        D.classifier.weight.numel() + n
    )


@pytest.mark.kernels
def test_discriminator_features_match_the_patch_discriminator():
    torch.manual_seed(0)
    D = DomainDiscriminator(3, 3, 8, 2)
    x = torch.rand(2, 3, SIZE, SIZE) * 2 - 1
    scores, logits = D(x)
    s2, l2, feats = D(x, features=2)
    only = D(x, features=2, scores=False)
    # exact: the same layers on the same shapes run the same kernels, features returned or not
    assert torch.equal(scores, s2) and torch.equal(logits, l2)
    assert len(feats) == 2 and all(torch.equal(a, b) for a, b in zip(feats, only))
    assert feats[0].shape == (2, 8, 16, 16)
    with pytest.raises(ValueError, match="features"):
        D(x, features=9)
