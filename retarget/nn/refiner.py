"""The swap refiner: a small network that turns a warped face of a person into that person's real face.

The face swap (:mod:`retarget.faces.retrieval`) pastes the target's nearest frame warped to
the source's expression. The warp leaves traces a viewer sees: seams where triangles meet,
a mouth interior stretched from another frame, lips smeared flat, shading that belongs to
another head pose. The target's own video shows what each of those frames should have
looked like, so the refiner learns the correction with supervision (no discriminator):
the input is another frame of the same person warped to frame t's landmarks, the target
is frame t (:mod:`retarget.faces.selfpairs`, :mod:`retarget.train.refiner`).

:class:`FaceRefiner` works at ``1 / factor`` of the crop's side (pixel unshuffle: no detail
is thrown away, it moves into channels), a stack of residual blocks there; its output is
its input plus the learned correction, and the last convolution starts at zero, so an
untrained refiner changes nothing. With ``smooth`` (the default) the correction is made
at ``1 / factor`` and upsampled bilinearly: shading, colour, seams and ghosts are corrected,
and the face's fine detail (pores, stubble, glasses rims) is the target's own, untouched.
Without it the correction is pixel-shuffled back at full resolution: a supervised network
trained with L1 then also smooths the fine detail it cannot predict (measured on one
person: +0.3 dB more on held-out faces, but a render half as sharp).

Shapes: ``[B, 3, H, W]`` in [-1, 1] -> ``[B, 3, H, W]`` (about [-1, 1]: the caller clamps);
H and W multiples of ``factor``.
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

from retarget.nn.enhancer import PlainBlock

__all__ = ["FaceRefiner"]


class FaceRefiner(nn.Module):
    """Same-size correction of face crops (see the module).

    Args:
        factor: the body works at ``H / factor x W / factor`` (2 or 4): larger reaches
            further (a seam, a brow) for the same cost.
        width: channels of the body.
        blocks: residual blocks in the body.
        smooth: make the correction at ``1 / factor`` and upsample it (fine detail passes unchanged).
    """

    def __init__(self, factor: int = 4, width: int = 32, blocks: int = 6, smooth: bool = True) -> None:
        super().__init__()
        if factor < 1:
            raise ValueError(f"factor must be >= 1, got {factor}")
        self.factor = int(factor)
        self.smooth = bool(smooth)
        packed = 3 * self.factor * self.factor
        self.head = nn.Conv2d(packed, width, 3, padding=1)
        self.body = nn.Sequential(*[PlainBlock(width) for _ in range(blocks)])
        self.tail = nn.Conv2d(width, 3 if smooth else packed, 3, padding=1)
        nn.init.zeros_(self.tail.weight)  # start as the identity: the residual is zero
        nn.init.zeros_(self.tail.bias)

    def forward(self, x: Tensor) -> Tensor:
        if x.shape[-1] % self.factor or x.shape[-2] % self.factor:
            raise ValueError(f"sides {tuple(x.shape[-2:])} must be multiples of {self.factor}")
        h = self.head(F.pixel_unshuffle(x, self.factor))
        h = self.body(h)
        if self.smooth:  # the correction at 1 / factor, upsampled: the input's fine detail stays as it is
            r = F.interpolate(self.tail(h), scale_factor=self.factor, mode="bilinear", align_corners=False)
            return x + r.to(x.dtype)
        return x + F.pixel_shuffle(self.tail(h), self.factor).to(x.dtype)
