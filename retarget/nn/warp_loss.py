"""Warp consistency along the source's motion: a training term that targets flicker.

Our addition, not part of Recycle-GAN: the translation of frame t+1 should equal the
translation of frame t moved along the *source's* optical flow, wherever that flow is
reliable: ``|G(x_t+1) - warp(G(x_t), flow(x_t+1 -> x_t))|_1`` over the pixels that pass
the forward-backward check. It is the warping error of Lai et al. (2018) (what
:mod:`retarget.eval.temporal` measures) turned into a loss.

The flow depends on the data only: training computes it once per frame pair when it
loads a domain (:mod:`retarget.train.motion`) and hands it to the step with the batch
(``batch["A.flow"]``, ``batch["A.valid"]``); the step never estimates flow.
:func:`add_motion` does the same for a batch of float frames outside a step (library
use, benchmarks). Sampling positions are built and used in float32 whatever the
autocast dtype: bf16 coordinates are off by up to half a pixel at 256 px.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from retarget.video.flow import FlowEstimator, motion


def flow_grid(flow: Tensor) -> Tensor:
    """Sampling grid of a backward flow for :func:`torch.nn.functional.grid_sample`.

    Args:
        flow: ``[N, H, W, 2]`` pixels (x then y): output pixel ``p`` samples the previous
            frame at ``p + flow(p)``.

    Returns:
        ``[N, H, W, 2]`` float32 in grid_sample's normalised coordinates (align_corners=True).
    """
    n, h, w, _ = flow.shape
    flow = flow.float()
    xs = torch.arange(w, device=flow.device, dtype=torch.float32)
    ys = torch.arange(h, device=flow.device, dtype=torch.float32)
    gx = (xs[None, None, :] + flow[..., 0]) * (2.0 / max(w - 1, 1)) - 1.0
    gy = (ys[None, :, None] + flow[..., 1]) * (2.0 / max(h - 1, 1)) - 1.0
    return torch.stack([gx, gy], -1)


def warp_consistency(prev_out: Tensor, cur_out: Tensor, flow: Tensor, valid: Tensor) -> Tensor:
    """Mean ``|cur_out - warp(prev_out)|`` over reliable pixels (a float32 scalar; 0 if none is reliable).

    Args:
        prev_out, cur_out: ``[N, C, H, W]`` translations of consecutive frames (any dtype).
        flow: ``[N, H, W, 2]`` backward flow of the source frames (cur onto prev), pixels.
        valid: ``[N, 1, H, W]`` 0/1 where ``flow`` is reliable.

    The warp and the difference run in float32 outside autocast.
    """
    with torch.autocast(device_type=cur_out.device.type, enabled=False):
        moved = F.grid_sample(
            prev_out.float(), flow_grid(flow), mode="bilinear", padding_mode="border", align_corners=True
        )
        mask = valid.float()
        diff = (cur_out.float() - moved).abs() * mask
        return diff.sum() / (mask.sum() * cur_out.shape[1]).clamp_min(1.0)


def _to_uint8(x: Tensor) -> np.ndarray:
    """``[N, 3, H, W]`` in [-1, 1] -> ``N x H x W x 3`` uint8 RGB."""
    return ((x.detach().float().clamp(-1, 1) + 1) * 127.5).round().byte().permute(0, 2, 3, 1).cpu().numpy()


def add_motion(batch: dict[str, Tensor], estimator: FlowEstimator | None = None) -> dict[str, Tensor]:
    """``batch`` with the source motion the warp term reads, estimated from its frames.

    For batches made outside :mod:`retarget.train` (the trainer's batches carry motion
    computed once per frame pair). Runs DIS on the host: call it outside the step.

    Args:
        batch: ``{"A": [B, T, 3, H, W], "B": ...}`` float in [-1, 1].

    Returns:
        a new dict with, for each domain X, ``"X.flow"`` ``[B, T-1, H, W, 2]`` and
        ``"X.valid"`` ``[B, T-1, 1, H, W]`` float32 on the frames' device (pair t: frame t+1 onto t).
    """
    est = estimator or FlowEstimator("medium")
    out = dict(batch)
    for name, x in batch.items():
        if "." in name or x.dim() != 5 or x.shape[1] < 2:
            continue
        frames = [_to_uint8(x[:, t]) for t in range(x.shape[1])]
        flows, valids = [], []
        for b in range(x.shape[0]):
            pairs = [motion(frames[t][b], frames[t + 1][b], est) for t in range(x.shape[1] - 1)]
            flows.append(np.stack([m.backward for m in pairs]))
            valids.append(np.stack([m.valid for m in pairs]))
        out[f"{name}.flow"] = torch.from_numpy(np.stack(flows)).to(x.device)
        out[f"{name}.valid"] = torch.from_numpy(np.stack(valids)).to(x.device, torch.float32).unsqueeze(2)
    return out
