"""Losses: GAN forms on known scores, gradient penalty, total variation, L1."""

from __future__ import annotations

import math

import pytest
import torch

from retarget.nn.losses import GanLoss, gradient_penalty, l1, total_variation


def test_lsgan_values():
    gan = GanLoss("lsgan")
    real, fake = torch.full((2, 1, 3, 3), 0.5), torch.full((2, 1, 3, 3), 2.0)
    assert gan.generator(fake).item() == pytest.approx(1.0)  # (2-1)^2
    assert gan.discriminator(real, fake).item() == pytest.approx(0.5 * (0.25 + 4.0))
    assert gan.discriminator(torch.ones(1, 1, 2, 2), torch.zeros(1, 1, 2, 2)).item() == 0


def test_vanilla_values():
    gan = GanLoss("vanilla")
    s = torch.tensor([[[[0.0, 2.0]]]])
    assert gan.generator(s).item() == pytest.approx((math.log(2) + math.log1p(math.exp(-2))) / 2)
    assert gan.real(torch.zeros(1, 1, 1, 1)).item() == pytest.approx(math.log(2))
    assert gan.fake(torch.full((1, 1, 1, 1), -30.0)).item() == pytest.approx(0, abs=1e-9)
    # non-saturating: finite and large for a confident D, no overflow
    assert math.isfinite(gan.generator(torch.full((1, 1, 1, 1), -200.0)).item())


def test_hinge_values():
    gan = GanLoss("hinge")
    assert gan.generator(torch.tensor([3.0, -1.0])).item() == pytest.approx(-1.0)
    assert gan.real(torch.tensor([2.0, 0.0])).item() == pytest.approx(0.5)  # relu(1-2)=0, relu(1)=1
    assert gan.fake(torch.tensor([-2.0, 0.5])).item() == pytest.approx(0.75)
    assert gan.discriminator(torch.tensor([2.0]), torch.tensor([-2.0])).item() == 0


def test_unknown_gan_loss():
    with pytest.raises(ValueError, match="wgan"):
        GanLoss("wgan")


def test_gradient_penalty_zero_for_gentle_d():
    # D(x) = 0.1 * mean(x): gradient norm 0.1 / sqrt(numel) << 1 -> no penalty
    real, fake = torch.randn(4, 3, 8, 8), torch.randn(4, 3, 8, 8)
    gp = gradient_penalty(lambda x: 0.1 * x.mean((1, 2, 3), keepdim=True), real, fake)
    assert gp.item() == 0


def test_gradient_penalty_positive_for_steep_d_and_differentiable():
    w = torch.tensor(50.0, requires_grad=True)
    real, fake = torch.randn(3, 3, 4, 4), torch.randn(3, 3, 4, 4)
    gp = gradient_penalty(lambda x: w * x.sum((1, 2, 3), keepdim=True), real, fake)
    # gradient of w*sum(x) w.r.t. x is w everywhere: norm w*sqrt(48)
    assert gp.item() == pytest.approx((50 * math.sqrt(48) - 1) ** 2, rel=1e-4)
    gp.backward()
    assert w.grad is not None and w.grad.item() > 0


def test_total_variation():
    assert total_variation(torch.full((2, 3, 5, 7), 0.3)).item() == 0
    x = torch.zeros(1, 1, 2, 2)
    x[0, 0, 0, 0] = 1.0
    # vertical diffs [1, 0] -> 0.5, horizontal [1, 0] -> 0.5
    assert total_variation(x).item() == pytest.approx(1.0)
    noisy = torch.rand(1, 3, 16, 16)
    assert total_variation(noisy) > total_variation(torch.nn.functional.avg_pool2d(noisy, 3, 1, 1))


def test_l1():
    a = torch.tensor([1.0, -1.0, 0.5])
    assert l1(a, torch.zeros(3)).item() == pytest.approx(2.5 / 3)
    assert l1(a, a).item() == 0
