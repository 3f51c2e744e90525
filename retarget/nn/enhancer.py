"""The face enhancer: a small super-resolution network trained on one person's own frames.

A face model trained at 64 px and pasted onto a 500 px frame is magnified 5-8x: even a
perfect model's face comes back soft (docs/benchmarks.md "face pairs"). The enhancer
learns, from the target person's frames extracted at ``scale`` x the model's size, to
turn a soft ``S`` px face of that person into a ``scale * S`` px one: glasses rims, eye
and hair edges the model could not draw at ``S`` px. It is trained with supervision only
(no discriminator), on the frames shrunk by ``scale`` and softened by a random blur and
noise (:func:`degrade`), so that it also takes the translator's softer faces.

:class:`FaceEnhancer` is the network (residual blocks at the input size, two pixel
shuffles); its output is the bilinear upsample of its input plus a learned residual, so an
untrained enhancer starts close to plain bilinear upsampling.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["FaceEnhancer", "PlainBlock", "PreBlur", "degrade", "gaussian_blur"]


class PlainBlock(nn.Module):
    """``x + conv(relu(conv(x)))``, 3x3 convolutions, no norm (a norm would wash out contrast)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.a = nn.Conv2d(channels, channels, 3, padding=1)
        self.b = nn.Conv2d(channels, channels, 3, padding=1)

    def forward(self, x: Tensor) -> Tensor:
        return x + self.b(torch.relu(self.a(x)))


class FaceEnhancer(nn.Module):
    """``scale`` x super-resolution of face crops.

    Args:
        scale: output side per input side; a power of two (2, 4 or 8).
        width: channels of the body.
        blocks: residual blocks at the input resolution.

    Shapes: ``[B, 3, H, W]`` in [-1, 1] -> ``[B, 3, scale * H, scale * W]`` (about [-1, 1]:
    not clamped, the caller clamps).
    """

    def __init__(self, scale: int = 4, width: int = 32, blocks: int = 6) -> None:
        super().__init__()
        if scale < 2 or scale & (scale - 1):
            raise ValueError(f"scale must be a power of two >= 2, got {scale}")
        self.scale = scale
        self.head = nn.Conv2d(3, width, 3, padding=1)
        self.body = nn.Sequential(*[PlainBlock(width) for _ in range(blocks)])
        self.ups = nn.ModuleList(nn.Conv2d(width, 4 * width, 3, padding=1) for _ in range(int(math.log2(scale))))
        self.tail = nn.Conv2d(width, 3, 3, padding=1)
        with torch.no_grad():  # start as bilinear upsampling: the residual is zero
            self.tail.weight.zero_()
            self.tail.bias.zero_()

    def forward(self, x: Tensor) -> Tensor:
        h = self.head(x)
        h = h + self.body(h)
        for up in self.ups:
            h = torch.relu(F.pixel_shuffle(up(h), 2))
        base = F.interpolate(x, scale_factor=self.scale, mode="bilinear", align_corners=False)
        return base + self.tail(h).to(base.dtype)


class PreBlur(nn.Module):
    """``net(blur(x))``: a Gaussian of ``sigma`` input pixels before ``net`` (render ``--enhancer-blur``).

    A translator's faces can carry a checkerboard at its finest scale (transposed
    convolutions); the enhancer learnt from blurred inputs, so a light blur removes the
    pattern before the enhancer would sharpen it, at no cost to what it restores.
    """

    def __init__(self, net: nn.Module, sigma: float) -> None:
        super().__init__()
        self.net, self.sigma = net, float(sigma)

    def forward(self, x: Tensor) -> Tensor:
        sigma = torch.full((x.shape[0],), self.sigma, device=x.device)
        return self.net(gaussian_blur(x, sigma))


def gaussian_blur(x: Tensor, sigma: Tensor) -> Tensor:
    """Blur each image of ``x`` ``[B, C, H, W]`` with its own Gaussian of ``sigma`` ``[B]`` pixels.

    A sigma under 0.1 leaves the image as it is. Reflect padding; the kernel reaches 3 sigma.
    """
    s_max = float(sigma.max()) if sigma.numel() else 0.0
    if s_max < 0.1:
        return x
    radius = max(1, math.ceil(3 * s_max))
    radius = min(radius, x.shape[-1] - 1, x.shape[-2] - 1)
    t = torch.arange(-radius, radius + 1, dtype=x.dtype, device=x.device)
    s = sigma.to(x.dtype).clamp_min(0.1)[:, None]
    k = torch.exp(-(t[None] ** 2) / (2 * s * s))
    k = torch.where(sigma[:, None] < 0.1, (t[None] == 0).to(x.dtype), k)
    k = k / k.sum(1, keepdim=True)  # [B, 2r+1]
    b, c, h, w = x.shape
    # one group per image and channel: every image gets its own kernel
    y = F.pad(x.reshape(1, b * c, h, w), (radius, radius, radius, radius), mode="reflect")
    kx = k.repeat_interleave(c, 0)[:, None, None, :]
    ky = k.repeat_interleave(c, 0)[:, None, :, None]
    y = F.conv2d(F.conv2d(y, kx, groups=b * c), ky, groups=b * c)
    return y.reshape(b, c, h, w)


def degrade(hi: Tensor, scale: int, blur: float, noise: float, generator: torch.Generator | None = None) -> Tensor:
    """The enhancer's input for a sharp ``hi`` ``[B, 3, H, W]`` in [-1, 1]: shrunk by ``scale``
    (area average), blurred by a Gaussian of sigma uniform in [0, ``blur``] low-resolution
    pixels and given Gaussian noise of std uniform in [0, ``noise``] (per image).

    Returns:
        ``[B, 3, H / scale, W / scale]``; H and W must be multiples of ``scale``.
    """
    if hi.shape[-1] % scale or hi.shape[-2] % scale:
        raise ValueError(f"image sides {tuple(hi.shape[-2:])} must be multiples of the scale {scale}")
    lo = F.avg_pool2d(hi, scale)
    n = hi.shape[0]
    sigma = torch.rand(n, generator=generator) * blur
    lo = gaussian_blur(lo, sigma.to(lo.device))
    if noise > 0:
        std = (torch.rand(n, generator=generator) * noise).to(lo.device, lo.dtype)
        lo = lo + torch.randn(lo.shape, generator=generator).to(lo.device, lo.dtype) * std[:, None, None, None]
    return lo
