"""Loss functions: GAN losses, one-sided gradient penalty, total variation, L1.

All return scalar tensors (mean over every element), so weights in ``LossConfig`` do
not depend on image size or batch size.
"""

from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F
from torch import Tensor


class GanLoss:
    """Adversarial loss of one form; D outputs are unbounded score maps ``[N, 1, h, w]``.

    Forms (``s`` = D score, means over all elements):

    - ``lsgan`` (Mao et al.): D: ½·mean((s_r - 1)²) + ½·mean(s_f²); G: mean((s_f - 1)²)
    - ``vanilla`` (Goodfellow et al., non-saturating): D: ½·[softplus(-s_r) + softplus(s_f)];
      G: mean(softplus(-s_f)) — i.e. binary cross-entropy on logits.
    - ``hinge`` (Lim & Ye / SAGAN): D: ½·[mean(relu(1 - s_r)) + mean(relu(1 + s_f))];
      G: -mean(s_f).

    The ½ on the D side is the release's ``(loss_real + loss_fake) * 0.5``.
    """

    def __init__(self, kind: str = "lsgan") -> None:
        if kind not in ("lsgan", "vanilla", "hinge"):
            raise ValueError(f"unknown GAN loss {kind!r}; choose lsgan, vanilla or hinge")
        self.kind = kind

    def generator(self, d_fake: Tensor) -> Tensor:
        """Loss of G given D's scores on its fakes; scalar, >= 0 except hinge (unbounded)."""
        if self.kind == "hinge":
            return -d_fake.float().mean()
        return self.real(d_fake)  # lsgan and non-saturating vanilla: G wants its fakes scored as real

    def real(self, d_real: Tensor) -> Tensor:
        """D's loss on real scores (without the ½); scalar >= 0."""
        s = d_real.float()
        if self.kind == "lsgan":
            return (s - 1).square().mean()
        if self.kind == "vanilla":
            return F.softplus(-s).mean()
        return F.relu(1 - s).mean()

    def fake(self, d_fake: Tensor) -> Tensor:
        """D's loss on fake scores (without the ½); scalar >= 0."""
        s = d_fake.float()
        if self.kind == "lsgan":
            return s.square().mean()
        if self.kind == "vanilla":
            return F.softplus(s).mean()
        return F.relu(1 + s).mean()

    def discriminator(self, d_real: Tensor, d_fake: Tensor) -> Tensor:
        """Total D loss ½·(real + fake); scalar >= 0."""
        return 0.5 * (self.real(d_real) + self.fake(d_fake))


def gradient_penalty(
    disc: Callable[[Tensor], Tensor], real: Tensor, fake: Tensor, generator: torch.Generator | None = None
) -> Tensor:
    """One-sided gradient penalty mean(max(0, ‖∇D(x̂)‖₂ - 1)²).

    x̂ = ε·real + (1-ε)·fake with ε ~ U[0, 1) per sample (Gulrajani et al., one-sided
    form of Petzka et al.): D is only penalised where it is steeper than 1-Lipschitz.

    Args:
        disc: the discriminator (its parameters receive gradients through the penalty);
            D(x̂) is its per-sample mean patch score.
        real, fake: ``[N, C, H, W]`` images, same shape; ``fake`` is detached here.
        generator: RNG for ε (default: torch's global RNG).

    Returns:
        float32 scalar >= 0, differentiable w.r.t. D's parameters (double backward);
        computed in float32 whatever the autocast around it.
    """
    # In float32 outside autocast: under fp16 the input gradients of a D with small
    # weights underflow to 0 (the penalty then reads a flat D), and scaling the score
    # instead would turn a scale overflow into an infinite loss term, which stops the
    # run; in float32 neither happens, and the outer GradScaler still scales the
    # penalty's own backward with the rest of the D loss.
    with torch.autocast(real.device.type, enabled=False):
        n = real.shape[0]
        eps = torch.rand(n, 1, 1, 1, generator=generator, device=real.device, dtype=torch.float32)
        x = (eps * real.detach().float() + (1 - eps) * fake.detach().float()).requires_grad_(True)
        # per-sample mean over the patch map, so the target norm 1 does not depend on the
        # number of patches (image size)
        score = disc(x).float().flatten(1).mean(1)
        (grad,) = torch.autograd.grad(score.sum(), x, create_graph=True)
        norm = grad.float().flatten(1).norm(2, dim=1)
        return F.relu(norm - 1).square().mean()


def total_variation(x: Tensor) -> Tensor:
    """Anisotropic total variation mean|x[..,i+1,j]-x[..,i,j]| + mean|x[..,i,j+1]-x[..,i,j]|.

    Args:
        x: ``[N, C, H, W]`` with H, W >= 2.

    Returns:
        float32 scalar >= 0; 0 exactly for a constant image (float32 whatever ``x``'s
        dtype: a mean over bf16 differences loses half a percent).
    """
    x = x.float()
    dh = (x[:, :, 1:, :] - x[:, :, :-1, :]).abs().mean()
    dw = (x[:, :, :, 1:] - x[:, :, :, :-1]).abs().mean()
    return dh + dw


def l1(a: Tensor, b: Tensor) -> Tensor:
    """Mean absolute difference of two same-shaped tensors; scalar >= 0 (in float32)."""
    return (a.float() - b.float()).abs().mean()
