"""Warp consistency along the source's motion: a training term that targets flicker.

Our addition, not part of Recycle-GAN: the translation of frame t+1 should equal the
translation of frame t moved along the *source's* optical flow, wherever that flow is
reliable: ``|G(x_t+1) - warp(G(x_t), flow(x_t+1 -> x_t))|_1`` over the pixels that pass
the forward-backward check. It is the warping error of Lai et al. (2018) (what
:mod:`retarget.eval.temporal` measures) turned into a loss. The flow is estimated on
the real frames with :mod:`retarget.video.flow` (OpenCV DIS, no gradient), so it costs
two DIS calls per pair (about 1 ms at 64 px) and no network.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from retarget.video.flow import FlowEstimator, motion

_ESTIMATOR: FlowEstimator | None = None


def _to_uint8(x: Tensor) -> np.ndarray:
    """``[B, 3, H, W]`` in [-1, 1] -> ``B x H x W x 3`` uint8 RGB."""
    return ((x.detach().float().clamp(-1, 1) + 1) * 127.5).round().byte().permute(0, 2, 3, 1).cpu().numpy()


def source_motion(prev: Tensor, cur: Tensor) -> tuple[Tensor, Tensor]:
    """Sampling grids and reliability masks that bring frame ``prev`` onto ``cur``.

    Args:
        prev, cur: ``[B, 3, H, W]`` in [-1, 1], consecutive real frames.

    Returns:
        ``grid``: ``[B, H, W, 2]`` for :func:`torch.nn.functional.grid_sample`
        (align_corners=True), on ``cur``'s device; ``valid``: ``[B, 1, H, W]`` float 0/1.
    """
    global _ESTIMATOR
    if _ESTIMATOR is None:
        _ESTIMATOR = FlowEstimator("medium")
    a, b = _to_uint8(prev), _to_uint8(cur)
    n, h, w = a.shape[:3]
    flows, masks = [], []
    for i in range(n):
        m = motion(a[i], b[i], _ESTIMATOR)
        flows.append(m.backward)
        masks.append(m.valid)
    flow = torch.from_numpy(np.stack(flows)).to(cur.device)
    valid = torch.from_numpy(np.stack(masks)).to(cur.device, torch.float32)[:, None]
    ys, xs = torch.meshgrid(torch.arange(h, device=cur.device), torch.arange(w, device=cur.device), indexing="ij")
    gx = (xs[None] + flow[..., 0]) / max(w - 1, 1) * 2 - 1
    gy = (ys[None] + flow[..., 1]) / max(h - 1, 1) * 2 - 1
    return torch.stack([gx, gy], -1).float(), valid


def warp_consistency(prev_out: Tensor, cur_out: Tensor, grid: Tensor, valid: Tensor) -> Tensor:
    """Mean ``|cur_out - warp(prev_out)|`` over reliable pixels (a float32 scalar; 0 if none is reliable).

    Runs in float32 outside any autocast: a grid rounded to bf16 is off by up to half a
    pixel at 256 px (8 significant bits for coordinates up to 255), a noise floor that
    rewards blur, and the bf16 CPU kernel returned NaN where the grid rounds to +-1.

    Args:
        prev_out, cur_out: ``[B, C, H, W]`` translations of consecutive frames (any float dtype).
        grid, valid: from :func:`source_motion` of the source frames.
    """
    with torch.autocast(prev_out.device.type, enabled=False):
        moved = F.grid_sample(
            prev_out.float(), grid.float(), mode="bilinear", padding_mode="border", align_corners=True
        )
        mask = valid.float()
        diff = (cur_out.float() - moved).abs() * mask
        return diff.sum() / (mask.sum() * cur_out.shape[1]).clamp_min(1.0)
