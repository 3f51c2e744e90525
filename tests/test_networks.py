"""Networks: official parameter counts, shapes, ranges, seeded init."""

from __future__ import annotations

import pytest
import torch

from retarget.config import model_preset
from retarget.nn.networks import (
    ResnetGenerator,
    UnetPredictor,
    build_discriminator,
    build_generator,
    build_networks,
    build_predictor,
    check_size,
    count_parameters,
    init_weights,
)


def test_official_parameter_counts():
    cfg = model_preset("official", size=128)
    assert count_parameters(build_generator(cfg)) == 7_837_699
    assert count_parameters(build_predictor(cfg)) == 41_828_739
    assert count_parameters(build_discriminator(cfg)) == 2_764_737


def test_official_256_uses_unet_256():
    cfg = model_preset("official", size=256)
    assert cfg.p_depth == 8
    # unet_256 adds one 512->512 level: down 4,194,816 + up (1024->512) 8,389,120
    assert count_parameters(build_predictor(cfg)) == 41_828_739 + 4_194_816 + 8_389_120


def test_nine_blocks_adds_residual_blocks():
    six = count_parameters(ResnetGenerator(3, 3, 64, 6))
    nine = count_parameters(ResnetGenerator(3, 3, 64, 9))
    assert nine - six == 3 * 2 * (256 * 256 * 9 + 256)


@pytest.mark.parametrize("model,keys", [("recycle", 6), ("cyclegan", 4)])
def test_build_networks_tiny_shapes_and_ranges(model, keys):
    cfg = model_preset("tiny", model=model, size=32)
    nets = build_networks(cfg)
    assert len(nets) == keys
    x = torch.rand(2, 3, 32, 32) * 2 - 1
    y = nets["G_AB"](x)
    assert y.shape == x.shape and y.abs().max() <= 1
    d = nets["D_A"](x)
    assert d.shape == (2, 1, 32 // 2**cfg.d_layers - 2, 32 // 2**cfg.d_layers - 2)
    if model == "recycle":
        p = nets["P_A"](torch.cat([x, x], 1))
        assert p.shape == x.shape and p.abs().max() <= 1


def test_unet_skip_connections_and_depth():
    net = UnetPredictor(frames=2, npf=4, depth=3)
    out = net(torch.randn(1, 6, 16, 16))
    assert out.shape == (1, 3, 16, 16)
    with pytest.raises(RuntimeError):
        net(torch.randn(1, 6, 12, 12))  # not a multiple of 2**depth: skip shapes differ


def test_init_is_seeded_and_normal():
    cfg = model_preset("tiny", size=32)
    torch.manual_seed(3)
    a = build_networks(cfg)
    torch.manual_seed(3)
    b = build_networks(cfg)
    for k in a:
        for pa, pb in zip(a[k].parameters(), b[k].parameters()):
            assert torch.equal(pa, pb)
    w = build_generator(model_preset("official", size=128)).model[4].weight.detach()  # the first down-sampling conv
    assert abs(float(w.std()) - 0.02) < 0.002 and abs(float(w.mean())) < 0.001


def test_check_size():
    check_size(model_preset("tiny", size=32))
    with pytest.raises(ValueError, match="2\\*\\*p_depth"):
        check_size(model_preset("official", size=96))
    with pytest.raises(ValueError, match="multiple of 4"):
        check_size(model_preset("tiny", model="cyclegan", size=30))


@pytest.mark.kernels
def test_discriminator_features_leave_scores_and_parameters_unchanged():
    from retarget.nn.networks import PatchDiscriminator

    torch.manual_seed(0)
    d = PatchDiscriminator(3, 8, 2)
    n = count_parameters(d)
    x = torch.rand(2, 3, 32, 32) * 2 - 1
    scores, feats = d(x, features=2)
    # exact: the same layers on the same shapes, whether one by one or as one Sequential, run the same kernels
    assert torch.equal(scores, d(x)) and count_parameters(d) == n
    assert [f.shape for f in feats] == [(2, 8, 16, 16), (2, 16, 8, 8)]
    early = d(x, features=2, scores=False)
    assert all(torch.equal(a, b) for a, b in zip(early, feats))
    with pytest.raises(ValueError, match="features"):
        d(x, features=4)


@pytest.mark.kernels
def test_residual_predictor_starts_as_copy_of_last_frame_and_learns():
    cfg = model_preset("tiny", size=32, p_residual=True)
    torch.manual_seed(0)
    net = build_predictor(cfg)
    x = torch.rand(2, 6, 32, 32) * 2 - 1
    assert torch.equal(net(x), x[:, 3:])  # untrained: x_t+1 exactly (the zeroed last layer adds 0.0)
    # the zeroed last layer still gets a gradient, so the residual can grow
    target = torch.zeros(2, 3, 32, 32)
    (net(x) - target).abs().mean().backward()
    assert net.last_layer().weight.grad.abs().sum() > 0
    # the same architecture without residual has the same parameters and does not copy
    plain = build_predictor(model_preset("tiny", size=32))
    assert count_parameters(plain) == count_parameters(net)
    assert not torch.allclose(plain(x), x[:, 3:], atol=0.1)


def test_residual_predictor_output_stays_in_range():
    net = UnetPredictor(frames=2, npf=4, depth=3, residual=True)
    x = torch.full((1, 6, 16, 16), 0.9)
    y = net(x)
    assert y.shape == (1, 3, 16, 16) and y.min() >= -1 and y.max() <= 1


def test_fit_sides_pads_any_size_without_a_shift():
    from retarget.nn.networks import fit_sides

    def needs_multiples_of_4(x):
        assert x.shape[-2] % 4 == 0 and x.shape[-1] % 4 == 0
        return x * 2

    x = torch.arange(2 * 3 * 17 * 30, dtype=torch.float32).view(2, 3, 17, 30)
    assert torch.equal(fit_sides(needs_multiples_of_4, x), x * 2)  # padded, translated, cropped back in place
    g = build_generator(model_preset("tiny", size=16))
    assert fit_sides(g, torch.zeros(1, 3, 18, 33)).shape == (1, 3, 18, 33)


def _nyquist_share(y: torch.Tensor) -> float:
    """Share of the image energy in the highest horizontal and vertical frequency (a checkerboard's)."""
    f = torch.fft.fft2(y - y.mean((-2, -1), keepdim=True)).abs() ** 2
    h, w = y.shape[-2:]
    return float(((f[..., h // 2, :].sum(-1) + f[..., :, w // 2].sum(-1)) / f.sum((-2, -1))).mean())


def test_resize_upsampling_has_no_checkerboard_and_the_same_parameters():
    from retarget.nn.conditional import ConditionalGenerator

    x = torch.rand(4, 3, 64, 64) * 2 - 1
    shares = {}
    for up in ("transpose", "resize", "blur"):
        torch.manual_seed(0)
        g = init_weights(ResnetGenerator(3, 3, 16, 2, up))
        with torch.no_grad():
            y = g(x)
        assert y.shape == x.shape
        shares[up] = _nyquist_share(y)
        assert count_parameters(g) == count_parameters(ResnetGenerator(3, 3, 16, 2))
    # at initialisation transposed convolutions put a fifth of the output's energy in the
    # checkerboard frequency; resize + convolution and the filtered transposed ones almost none
    assert shares["transpose"] > 0.1 and shares["resize"] < 0.02 and shares["blur"] < 0.02
    cond = ConditionalGenerator(3, "modulate", 8, 1, "resize")
    assert not any(isinstance(m, torch.nn.ConvTranspose2d) for m in cond.modules())
    with pytest.raises(ValueError, match="upsample"):
        ResnetGenerator(3, 3, 8, 1, "bicubic")


def test_the_upsample_option_reaches_the_generators_and_old_configs_mean_transpose():
    from retarget.config import ModelConfig, from_dict, to_dict

    nets = build_networks(model_preset("tiny", model="cyclegan", size=32, upsample="resize"))
    assert not any(isinstance(m, torch.nn.ConvTranspose2d) for m in nets["G_AB"].modules())
    old = {k: v for k, v in to_dict(ModelConfig()).items() if k != "upsample"}
    assert from_dict(ModelConfig, old).upsample == "transpose"


def test_the_blur_filter_removes_a_period_two_pattern_and_keeps_a_flat_picture():
    from retarget.nn.blocks import Blur2d

    blur = Blur2d(2)
    flat = torch.full((1, 2, 8, 8), 0.7)
    assert torch.allclose(blur(flat), flat)
    checker = (torch.arange(8)[:, None] + torch.arange(8)[None, :]) % 2 * 2.0 - 1.0  # +-1 every other pixel
    out = blur(checker.expand(1, 2, 8, 8).clone())
    assert out[..., 1:-1, 1:-1].abs().max() < 1e-6  # inside: gone (the reflected border keeps a trace)
    assert not list(blur.parameters()) and "kernel" not in blur.state_dict()
