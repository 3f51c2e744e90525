"""Networks of the multi-domain model: one generator, discriminator and predictor for n domains.

StarGAN (Choi et al., CVPR 2018) translates between many domains with one generator
told the target domain, and a discriminator that also names the domain of what it
sees. Here the three networks of Recycle-GAN become conditional on a domain index
``c`` (a ``[B]`` long tensor, one index per sample, ``0 <= c < n``):

- ``G(x, c)``: the ResNet generator of :mod:`retarget.nn.blocks`, translating ``x``
  into domain ``c``. How ``c`` enters is ``ModelConfig.condition``:
  ``concat`` (StarGAN): one-hot label maps concatenated to the input image;
  ``modulate``: a per-domain scale and shift after every instance norm (conditional
  instance norm, Dumoulin et al., ICLR 2017).
- ``D(x)``: the PatchGAN trunk with two heads, the real/fake patch scores and a domain
  classifier (``n`` logits per image, the per-patch logits averaged over the image, so
  any frame size works).
- ``P(x_t, x_t+1, c)``: the U-Net predictor with the label maps of ``c`` concatenated
  before the frames: one predictor for all domains.

Why the label maps of ``concat`` are zero-padded: the generator's first convolution
is followed by an instance norm without affine parameters. A constant map,
reflection-padded, adds a constant to each output channel, which the norm subtracts
again exactly: the label would be lost. Zero padding (what StarGAN's convolutions do)
leaves a border the norm cannot remove, and the generator learns to carry it inward;
``modulate`` acts after the norm and needs no such help. docs/training.md
("Multi-domain model") has the measurement of both.
"""

from __future__ import annotations

from typing import Optional, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from retarget.config import ModelConfig
from retarget.nn.blocks import (
    PatchDiscriminator,
    ResidualBlock,
    UnetPredictor,
    init_weights,
    instance_norm,
    start_as_copy,
    up_layer,
)

#: Network names of a multi-domain model, in build order (``P`` for recycle only).
MULTI_NETWORKS = ("G", "D", "P")


def label_maps(c: Tensor, domains: int, h: int, w: int, dtype: torch.dtype = torch.float32) -> Tensor:
    """One-hot maps of domain indices: ``c`` ``[B]`` long -> ``[B, domains, h, w]`` (1 in channel ``c``)."""
    return F.one_hot(c, domains).to(dtype)[:, :, None, None].expand(-1, -1, h, w)


class ModulatedNorm(nn.Module):
    """Instance norm, then a scale and shift per domain: ``IN(x) * (1 + scale[c]) + shift[c]``.

    ``scale`` and ``shift`` are ``[domains, channels]``, drawn N(0, 0.02) like the
    convolutions (from torch's global RNG), so an untrained network already tells the
    labels apart, slightly. Shapes: ``x`` ``[B, C, H, W]``, ``c`` ``[B]`` -> ``[B, C, H, W]``.
    """

    def __init__(self, channels: int, domains: int, std: float = 0.02) -> None:
        super().__init__()
        self.norm = instance_norm(channels)
        self.scale = nn.Parameter(torch.randn(domains, channels) * std)
        self.shift = nn.Parameter(torch.randn(domains, channels) * std)

    def forward(self, x: Tensor, c: Tensor) -> Tensor:
        y = self.norm(x)
        scale = (1 + self.scale[c]).to(y.dtype)[:, :, None, None]
        return y * scale + self.shift[c].to(y.dtype)[:, :, None, None]


class ModulatedBlock(nn.Module):
    """:class:`~retarget.nn.blocks.ResidualBlock` with :class:`ModulatedNorm` in place of both norms."""

    def __init__(self, channels: int, domains: int) -> None:
        super().__init__()
        self.conv1 = nn.Sequential(nn.ReflectionPad2d(1), nn.Conv2d(channels, channels, 3))
        self.norm1 = ModulatedNorm(channels, domains)
        self.conv2 = nn.Sequential(nn.ReflectionPad2d(1), nn.Conv2d(channels, channels, 3))
        self.norm2 = ModulatedNorm(channels, domains)

    def forward(self, x: Tensor, c: Tensor) -> Tensor:
        h = torch.relu(self.norm1(self.conv1(x), c))
        return x + self.norm2(self.conv2(h), c)


class ConditionalGenerator(nn.Module):
    """``G(x, c)``: the ResNet generator translating ``x`` into domain ``c``.

    Args:
        domains: number of domains n (>= 2).
        condition: ``concat`` (zero-padded one-hot label maps concatenated to the
            input: ``n * ngf * 49`` more weights) or ``modulate`` (every instance norm
            followed by a per-domain scale and shift, :class:`ModulatedNorm`: ``2n``
            more parameters per normalised channel).
        ngf, blocks, upsample: as :class:`~retarget.nn.blocks.ResnetGenerator`, whose layers
            these are, in the same order.

    Shapes: ``x`` ``[B, 3, H, W]`` in [-1, 1], ``c`` ``[B]`` long in [0, n) ->
    ``[B, 3, H, W]`` in [-1, 1]; H and W multiples of 4.
    """

    def __init__(
        self, domains: int, condition: str = "modulate", ngf: int = 64, blocks: int = 6, upsample: str = "transpose"
    ) -> None:
        super().__init__()
        if condition not in ("concat", "modulate"):
            raise ValueError(f"unknown condition {condition!r}; choose concat or modulate")
        self.domains, self.condition = domains, condition
        modulate = condition == "modulate"

        def norm(ch: int) -> nn.Module:
            return ModulatedNorm(ch, domains) if modulate else instance_norm(ch)

        # the first conv reads reflection-padded frames (and the zero-padded label maps), see forward
        layers: list[nn.Module] = [nn.Conv2d(3 + (0 if modulate else domains), ngf, 7), norm(ngf), nn.ReLU(True)]
        ch = ngf
        for _ in range(2):
            layers += [nn.Conv2d(ch, ch * 2, 3, stride=2, padding=1), norm(ch * 2), nn.ReLU(inplace=True)]
            ch *= 2
        layers += [ModulatedBlock(ch, domains) if modulate else ResidualBlock(ch) for _ in range(blocks)]
        for _ in range(2):
            layers += [*up_layer(ch, ch // 2, upsample), norm(ch // 2), nn.ReLU(inplace=True)]
            ch //= 2
        layers += [nn.ReflectionPad2d(3), nn.Conv2d(ch, 3, 7), nn.Tanh()]
        self.layers = nn.ModuleList(layers)

    def forward(self, x: Tensor, c: Tensor) -> Tensor:
        h = F.pad(x, (3, 3, 3, 3), mode="reflect")
        if self.condition == "concat":
            maps = F.pad(label_maps(c, self.domains, x.shape[2], x.shape[3], h.dtype), (3, 3, 3, 3))
            h = torch.cat([h, maps], 1)
        for layer in self.layers:
            h = layer(h, c) if isinstance(layer, (ModulatedNorm, ModulatedBlock)) else layer(h)
        return h


class DomainDiscriminator(PatchDiscriminator):
    """PatchGAN with a second head: real/fake patch scores and ``n`` domain logits.

    The classifier is a 4x4 convolution beside the score layer on the shared trunk,
    giving per-patch logits that are averaged over the image (any frame size works).

    ``forward(x)`` -> ``(scores [B, 1, H', W'], logits [B, n] float32)``;
    ``forward(x, features=k)`` -> ``(scores, logits, [f_1, ..., f_k])`` (the block
    outputs of :class:`~retarget.nn.blocks.PatchDiscriminator`);
    ``forward(x, features=k, scores=False)`` -> ``[f_1, ..., f_k]`` only.
    """

    def __init__(self, domains: int, in_ch: int = 3, ndf: int = 64, layers: int = 3) -> None:
        super().__init__(in_ch, ndf, layers)
        self.domains = domains
        trunk_ch = self.model[-1].in_channels
        self.classifier = nn.Conv2d(trunk_ch, domains, 4, stride=1, padding=1)

    def forward(  # type: ignore[override]
        self, x: Tensor, features: int = 0, scores: bool = True
    ) -> tuple[Tensor, Tensor] | tuple[Tensor, Tensor, list[Tensor]] | list[Tensor]:
        if features and not scores:
            return super().forward(x, features, scores=False)
        if features and not 1 <= features <= len(self.block_ends):
            raise ValueError(f"features must be in 1..{len(self.block_ends)}, got {features}")
        ends = self.block_ends[:features] if features else ()
        feats: list[Tensor] = []
        h = x
        for i, layer in enumerate(self.model[:-1]):
            h = layer(h)
            if i in ends:
                feats.append(h)
        out = self.model[-1](h)
        logits = self.classifier(h).float().mean((2, 3))
        return (out, logits, feats) if features else (out, logits)


class ConditionalPredictor(nn.Module):
    """``P(frames, c)``: the U-Net predictor of domain ``c``'s next frame.

    Wraps a :class:`~retarget.nn.blocks.UnetPredictor` built with ``extra_ch = n``;
    the label maps go before the frames, so a residual predictor still adds to the
    last frame. Shapes: ``x`` ``[B, 3 * frames, H, W]``, ``c`` ``[B]`` -> ``[B, 3, H, W]``.
    """

    def __init__(self, unet: UnetPredictor, domains: int) -> None:
        super().__init__()
        self.unet = unet
        self.domains = domains

    def forward(self, x: Tensor, c: Tensor) -> Tensor:
        maps = label_maps(c, self.domains, x.shape[2], x.shape[3], x.dtype)
        return self.unet(torch.cat([maps, x], 1))


def build_conditional_networks(cfg: ModelConfig, names: Optional[Sequence[str]] = None) -> dict[str, nn.Module]:
    """The networks of a multi-domain model, freshly initialised from torch's global RNG.

    Args:
        names: build only these of ``G``, ``D``, ``P`` (render needs ``G`` alone; the
            others would cost time and memory); None builds all.

    Returns:
        ``G`` (:class:`ConditionalGenerator`), ``D`` (:class:`DomainDiscriminator`) and
        for ``cfg.model == "recycle"`` ``P`` (:class:`ConditionalPredictor`), built in
        this order over ``cfg.domains`` (>= 2) domains. Names that are not part of the
        model (``P`` of a cyclegan) are left out.
    """
    if cfg.domains < 2:
        raise ValueError(f"a multi-domain model needs domains >= 2, got {cfg.domains}")
    wanted = set(MULTI_NETWORKS if names is None else names)
    nets: dict[str, nn.Module] = {}
    if "G" in wanted:
        nets["G"] = init_weights(ConditionalGenerator(cfg.domains, cfg.condition, cfg.ngf, cfg.blocks, cfg.upsample))
    if "D" in wanted:
        nets["D"] = init_weights(DomainDiscriminator(cfg.domains, 3, cfg.ndf, cfg.d_layers))
    if cfg.model == "recycle" and "P" in wanted:
        unet = UnetPredictor(cfg.p_frames, cfg.npf, cfg.p_depth, residual=cfg.p_residual, extra_ch=cfg.domains)
        init_weights(unet)
        nets["P"] = ConditionalPredictor(start_as_copy(unet) if cfg.p_residual else unet, cfg.domains)
    return nets


class FixedTarget(nn.Module):
    """``G`` with its target fixed: ``FixedTarget(G, k)(x) = G(x, [k] * B)``, for code that calls ``net(x)``.

    Render, the temporal preview and :func:`retarget.nn.networks.fit_sides` apply a
    generator to ``[B, 3, H, W]`` alone; this gives them the conditional generator
    toward domain ``k``.
    """

    def __init__(self, generator: nn.Module, target: int) -> None:
        super().__init__()
        self.generator, self.target = generator, int(target)

    def forward(self, x: Tensor) -> Tensor:
        c = torch.full((x.shape[0],), self.target, dtype=torch.long, device=x.device)
        return self.generator(x, c)
