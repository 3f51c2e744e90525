"""The building blocks of every model: ResNet generator, U-Net predictor, PatchGAN, init.

With the ``official`` preset every layer matches the Recycle-GAN release (itself the
2017 CycleGAN code): instance norm without affine parameters or running statistics,
convolution biases wherever a norm follows (the release sets ``use_bias`` for instance
norm), reflection padding in the generator, no dropout (the release is trained with
``--no_dropout``). Parameter counts are asserted in tests/test_networks.py.
:mod:`retarget.nn.networks` builds a model's networks from these blocks, and
:mod:`retarget.nn.conditional` the multi-domain ones.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn


def instance_norm(channels: int) -> nn.Module:
    """The release's instance norm of ``channels`` channels."""
    # affine=False and no running stats: exactly the release's instance norm, so a
    # network behaves the same in train and eval mode.
    return nn.InstanceNorm2d(channels, affine=False, track_running_stats=False)


class ResidualBlock(nn.Module):
    """``x + conv-norm-relu-conv-norm(x)`` with reflection padding; shape preserved."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.ReflectionPad2d(1),
            nn.Conv2d(channels, channels, 3),
            instance_norm(channels),
            nn.ReLU(inplace=True),
            nn.ReflectionPad2d(1),
            nn.Conv2d(channels, channels, 3),
            instance_norm(channels),
        )

    def forward(self, x: Tensor) -> Tensor:
        return x + self.body(x)


class Blur2d(nn.Module):
    """A fixed [1, 2, 1] x [1, 2, 1] / 16 low-pass on every channel, reflection-padded; shape preserved.

    Its response at the Nyquist frequency is 0 (1 - 2 + 1), so it removes any pattern that
    repeats every 2 pixels, the checkerboard a stride-2 transposed convolution draws where
    its kernel overlaps unevenly (StyleGAN2 filters its transposed convolutions the same
    way). No parameters: the kernel is a buffer outside the state dict.
    """

    def __init__(self, channels: int) -> None:
        super().__init__()
        k = torch.tensor([1.0, 2.0, 1.0])
        kernel = (k[:, None] * k[None, :]) / 16.0
        self.register_buffer("kernel", kernel.expand(channels, 1, 3, 3).clone(), persistent=False)
        self.pad = nn.ReflectionPad2d(1)

    def forward(self, x: Tensor) -> Tensor:
        return nn.functional.conv2d(self.pad(x), self.kernel.to(x.dtype), groups=x.shape[1])


def up_layer(ch_in: int, ch_out: int, upsample: str = "transpose") -> list[nn.Module]:
    """A x2 up-sampling convolution of the generator (without its norm and activation).

    ``transpose``: the release's 3x3 transposed convolution, stride 2. ``resize``: nearest
    x2 resize then a reflection-padded 3x3 convolution (Odena et al., "Deconvolution and
    checkerboard artifacts", 2016): every output pixel sees the same number of input
    pixels, so no checkerboard; the same parameter count. ``blur``: the transposed
    convolution followed by :class:`Blur2d`, which removes its checkerboard at the cost of
    a depthwise 3x3 filter; the same parameters as ``transpose`` (docs/benchmarks.md,
    "quality per budget").
    """
    if upsample in ("transpose", "blur"):
        conv = nn.ConvTranspose2d(ch_in, ch_out, 3, stride=2, padding=1, output_padding=1)
        return [conv, Blur2d(ch_out)] if upsample == "blur" else [conv]
    if upsample == "resize":
        return [nn.Upsample(scale_factor=2, mode="nearest"), nn.ReflectionPad2d(1), nn.Conv2d(ch_in, ch_out, 3)]
    raise ValueError(f"unknown upsample {upsample!r}; choose transpose, resize or blur")


class ResnetGenerator(nn.Module):
    """Image-to-image translator (Johnson et al. / CycleGAN ``resnet_Nblocks``).

    Args:
        in_ch, out_ch: image channels (3).
        ngf: filters of the first layer; ×2 and ×4 after the two down-samplings.
        blocks: residual blocks at 1/4 resolution (6 or 9 in the release).
        upsample: ``transpose`` (the release), ``resize`` or ``blur`` (:func:`up_layer`).

    Shapes: ``[B, in_ch, H, W]`` in [-1, 1] -> ``[B, out_ch, H, W]`` in [-1, 1] (tanh);
    H and W must be multiples of 4.
    """

    def __init__(
        self, in_ch: int = 3, out_ch: int = 3, ngf: int = 64, blocks: int = 6, upsample: str = "transpose"
    ) -> None:
        super().__init__()
        layers: list[nn.Module] = [
            nn.ReflectionPad2d(3),
            nn.Conv2d(in_ch, ngf, 7),
            instance_norm(ngf),
            nn.ReLU(inplace=True),
        ]
        ch = ngf
        for _ in range(2):
            layers += [nn.Conv2d(ch, ch * 2, 3, stride=2, padding=1), instance_norm(ch * 2), nn.ReLU(inplace=True)]
            ch *= 2
        layers += [ResidualBlock(ch) for _ in range(blocks)]
        for _ in range(2):
            layers += [*up_layer(ch, ch // 2, upsample), instance_norm(ch // 2), nn.ReLU(inplace=True)]
            ch //= 2
        layers += [nn.ReflectionPad2d(3), nn.Conv2d(ch, out_ch, 7), nn.Tanh()]
        self.model = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        return self.model(x)


class _UnetLevel(nn.Module):
    """One level of the U-Net: down, the inner levels, up, and the skip concatenation.

    ``outer`` channels enter; ``inner`` channels leave the down-convolution. The level
    returns ``cat([x, up])`` (``2 * outer`` channels), except the outermost, which
    returns only its up-convolution (``out_ch`` channels, tanh).
    """

    def __init__(
        self, outer: int, inner: int, sub: nn.Module | None, in_ch: int | None = None, out_ch: int | None = None
    ) -> None:
        super().__init__()
        outermost = in_ch is not None
        innermost = sub is None
        self.outermost = outermost
        down_in = in_ch if outermost else outer
        up_in = inner if innermost else inner * 2
        down: list[nn.Module] = []
        if not outermost:
            down.append(nn.LeakyReLU(0.2, inplace=True))
        down.append(nn.Conv2d(down_in, inner, 4, stride=2, padding=1))
        if not (outermost or innermost):
            down.append(instance_norm(inner))
        up: list[nn.Module] = [nn.ReLU(inplace=True)]
        if outermost:
            up += [nn.ConvTranspose2d(up_in, out_ch or outer, 4, stride=2, padding=1), nn.Tanh()]
        else:
            up += [nn.ConvTranspose2d(up_in, outer, 4, stride=2, padding=1), instance_norm(outer)]
        self.down = nn.Sequential(*down)
        self.sub = sub if sub is not None else nn.Identity()
        self.up = nn.Sequential(*up)

    def forward(self, x: Tensor) -> Tensor:
        y = self.up(self.sub(self.down(x)))
        return y if self.outermost else torch.cat([x, y], 1)


class UnetPredictor(nn.Module):
    """Next-frame predictor: a U-Net on ``frames`` stacked RGB frames (``unet_128``/``unet_256``).

    Args:
        frames: past frames it sees (2 in the release: x_t, x_t+1 -> x_t+2).
        npf: width of the first level; doubles per level up to ``8 * npf``.
        depth: down-samplings (7 = unet_128, 8 = unet_256; any depth >= 2). Widths
            double per level up to ``8 * npf`` as in the release.

        residual: predict ``clamp(x_last + U-Net(x), -1, 1)`` (x_last = the last 3 input
            channels) instead of the U-Net's output itself; :func:`start_as_copy` then
            zeroes the last layer, so an untrained predictor copies the last frame. Our
            addition, not in the release (docs/training.md).
        extra_ch: further input channels placed *before* the frames (the domain label
            maps of :class:`retarget.nn.conditional.ConditionalPredictor`); 0 = none.

    Shapes: ``[B, extra_ch + 3 * frames, H, W]`` in [-1, 1] -> ``[B, 3, H, W]`` in [-1, 1]
    (tanh); H and W must be multiples of ``2 ** depth``.
    """

    def __init__(
        self,
        frames: int = 2,
        npf: int = 64,
        depth: int = 7,
        out_ch: int = 3,
        residual: bool = False,
        extra_ch: int = 0,
    ) -> None:
        super().__init__()
        self.residual = residual
        if depth < 2:
            raise ValueError(f"U-Net depth must be at least 2, got {depth}")
        self.depth = depth
        # widths per level from the outside in: npf, 2npf, 4npf, 8npf, 8npf, ...
        widths = [npf * min(2**i, 8) for i in range(depth)]
        level: nn.Module | None = None
        for i in range(depth - 1, 0, -1):
            level = _UnetLevel(widths[i - 1], widths[i], level)
        self.net = _UnetLevel(out_ch, widths[0], level, in_ch=extra_ch + 3 * frames, out_ch=out_ch)

    def last_layer(self) -> nn.ConvTranspose2d:
        """The outermost up-convolution (before the tanh)."""
        return self.net.up[1]  # type: ignore[return-value]

    def forward(self, x: Tensor) -> Tensor:
        y = self.net(x)
        if self.residual:
            return (x[:, -y.shape[1] :] + y).clamp(-1.0, 1.0)
        return y


class PatchDiscriminator(nn.Module):
    """PatchGAN discriminator (70x70 receptive field with 3 layers).

    Args:
        ndf: filters of the first layer; doubles per layer up to ``8 * ndf``.
        layers: stride-2 layers after the first (``n_layers_D`` of the release).

    Shapes: ``[B, 3, H, W]`` in [-1, 1] -> ``[B, 1, H', W']`` unbounded scores
    (no sigmoid; the loss decides), H' = H / 2**layers - 2.

    ``forward(x, features=k)`` also returns the outputs of the first ``k`` blocks
    (block 1: conv + LeakyReLU, ``[B, ndf, H/2, W/2]``; block n > 1: conv + norm +
    LeakyReLU), for the feature-matching loss; ``scores=False`` stops after block ``k``
    and returns only those features. Both go through ``forward``, so a
    DistributedDataParallel wrapper sees every call.
    """

    def __init__(self, in_ch: int = 3, ndf: int = 64, layers: int = 3) -> None:
        super().__init__()
        seq: list[nn.Module] = [nn.Conv2d(in_ch, ndf, 4, stride=2, padding=1), nn.LeakyReLU(0.2, inplace=True)]
        ch = ndf
        for n in range(1, layers + 1):
            nxt = ndf * min(2**n, 8)
            stride = 2 if n < layers else 1
            seq += [
                nn.Conv2d(ch, nxt, 4, stride=stride, padding=1),
                instance_norm(nxt),
                nn.LeakyReLU(0.2, inplace=True),
            ]
            ch = nxt
        seq.append(nn.Conv2d(ch, 1, 4, stride=1, padding=1))
        self.model = nn.Sequential(*seq)
        # index in self.model of the last layer of each block (its LeakyReLU)
        self.block_ends: tuple[int, ...] = tuple(1 + 3 * n for n in range(layers + 1))

    def forward(
        self, x: Tensor, features: int = 0, scores: bool = True
    ) -> Tensor | tuple[Tensor, list[Tensor]] | list[Tensor]:
        """Scores ``[B, 1, H', W']``; with ``features=k`` (1 <= k <= layers + 1) also the
        block outputs as ``(scores, [f_1, ..., f_k])``, or only the list if not ``scores``."""
        if not features:
            return self.model(x)
        if not 1 <= features <= len(self.block_ends):
            raise ValueError(f"features must be in 1..{len(self.block_ends)}, got {features}")
        ends = self.block_ends[:features]
        feats: list[Tensor] = []
        h = x
        for i, layer in enumerate(self.model):
            h = layer(h)
            if i in ends:
                feats.append(h)
                if not scores and len(feats) == features:
                    return feats
        return h, feats


def init_weights(net: nn.Module, std: float = 0.02) -> nn.Module:
    """Official initialisation: conv weights ~ N(0, std); biases 0. Uses torch's global RNG."""
    for m in net.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
            nn.init.normal_(m.weight, 0.0, std)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
    return net


def start_as_copy(net: UnetPredictor) -> UnetPredictor:
    """Zero the last layer of a residual predictor, so that it starts by copying the last frame."""
    with torch.no_grad():
        last = net.last_layer()
        last.weight.zero_()
        if last.bias is not None:
            last.bias.zero_()
    return net
