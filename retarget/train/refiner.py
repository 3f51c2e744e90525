"""``retarget train-refiner``: learn a swap refiner from the target person's own video.

The dataset is the one ``render --target-faces`` swaps in (``retarget extract b.mp4
--align face --size 256``). Its frames become pairs (:mod:`retarget.faces.selfpairs`):
the frame of nearest expression outside a frame's own neighbourhood, warped to that
frame's landmarks, and the frame itself. The last ``holdout`` share of the frames is kept
out of training and scores the refiner at the end (face-region PSNR of its output and of
the plain warp against the real frames). Each step takes ``batch_size`` random patches of
random pairs (flipped at random, both sides alike) and minimises the L1 distance to the
real frame inside the swap's paste mask. No discriminator: it trains in minutes on a CPU.
The refiner folder is written at the end (:mod:`retarget.run.refiner`).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from retarget.atomic import clean_stale_temps
from retarget.config import RefinerConfig
from retarget.device import amp_dtype, precision_name, resolve_amp, resolve_device
from retarget.errors import RetargetError
from retarget.faces.index import FaceIndex
from retarget.faces.selfpairs import SelfPairs, self_pairs
from retarget.nn.refiner import FaceRefiner
from retarget.options import check_config
from retarget.progress import console, make_progress
from retarget.train.enhancer import check_loss, learning_rate, update

__all__ = ["RefinerResult", "masked_psnr", "sample", "split_frames", "train_refiner"]


@dataclass
class RefinerResult:
    """What :func:`train_refiner` did."""

    out: Path  # the refiner folder written
    steps: int  # optimisation steps done
    seconds: float  # pairs and training, wall clock
    psnr: float  # dB, the refiner's output on the held-out frames, inside the paste mask
    psnr_warp: float  # dB, the plain warp (its input) on the same frames
    precision: str  # bf16, fp16 or fp32


def split_frames(index: FaceIndex, cfg: RefinerConfig) -> tuple[np.ndarray, np.ndarray]:
    """(training, held-out) positions in ``index``: up to ``max_frames`` evenly spaced, the last
    ``holdout`` share of them held out (at least one of each when ``holdout`` > 0).

    Raises:
        RetargetError: too few faces for both parts.
    """
    n = len(index)
    keep = np.unique(np.linspace(0, n - 1, min(cfg.max_frames, n)).round().astype(np.int64))
    held = int(round(len(keep) * cfg.holdout))
    if cfg.holdout > 0:
        held = max(held, 1)
    if len(keep) - held < 2:
        if cfg.max_frames < n:  # the dataset has enough: the option kept too few of them
            raise RetargetError(f"--max-frames {cfg.max_frames}: train-refiner needs at least {held + 2} faces")
        raise RetargetError(f"{index.root}: {n} faces; train-refiner needs at least {held + 2}")
    return keep[: len(keep) - held], keep[len(keep) - held :]


def to_tensor(images: np.ndarray) -> torch.Tensor:
    """``(N, H, W, C)`` uint8 -> ``[N, C, H, W]`` float32 in [-1, 1] (``C`` = 3), or [0, 1] masks for ``(N, H, W)``."""
    t = torch.from_numpy(np.ascontiguousarray(images))
    if t.dim() == 3:
        return t.float().div(255.0)[:, None]
    return t.permute(0, 3, 1, 2).float().div(127.5).sub(1.0)


def sample(pairs: SelfPairs, cfg: RefinerConfig, gen: torch.Generator) -> tuple[torch.Tensor, ...]:
    """``batch_size`` random patches of side ``patch``: (inputs, targets in [-1, 1], masks in [0, 1]), flipped alike."""
    n, size = len(pairs.inputs), pairs.inputs.shape[1]
    patch = min(cfg.patch, size) // cfg.factor * cfg.factor
    idx = torch.randint(0, n, (cfg.batch_size,), generator=gen).tolist()
    corner = torch.randint(0, size - patch + 1, (cfg.batch_size, 2), generator=gen).tolist()
    flips = (torch.rand(cfg.batch_size, generator=gen) < 0.5).tolist()
    out: list[list[np.ndarray]] = [[], [], []]
    for i, (y, x), flip in zip(idx, corner, flips):
        for k, arr in enumerate((pairs.inputs, pairs.targets, pairs.masks)):
            p = arr[i, y : y + patch, x : x + patch]
            out[k].append(p[:, ::-1] if flip else p)
    return tuple(to_tensor(np.stack(part)) for part in out)


def masked_l1(out: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean absolute error inside ``mask`` (``[B, 1, H, W]`` weights); 0 where the mask is empty."""
    return ((out.float() - target).abs() * mask).sum() / (3.0 * mask.sum()).clamp_min(1.0)


def masked_psnr(out: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> float:
    """PSNR (dB) of images in [-1, 1] inside ``mask`` (weights in [0, 1], ``[B, 1, H, W]``)."""
    err = (((out.clamp(-1, 1) - target) / 2) ** 2 * mask).sum() / (3.0 * mask.sum()).clamp_min(1e-6)
    return 10 * math.log10(1.0 / max(float(err), 1e-12))


@torch.no_grad()
def score(net: FaceRefiner, pairs: SelfPairs, device: torch.device) -> tuple[float, float]:
    """(refined PSNR, warp PSNR) over the pairs' whole crops inside their masks."""
    net.eval()
    size = pairs.inputs.shape[1] // net.factor * net.factor
    x = to_tensor(pairs.inputs[:, :size, :size])
    y, m = to_tensor(pairs.targets[:, :size, :size]), to_tensor(pairs.masks[:, :size, :size])
    out = torch.cat([net(x[i : i + 8].to(device)).float().cpu() for i in range(0, len(x), 8)])
    return masked_psnr(out, y, m), masked_psnr(x, y, m)


def _out_folder(cfg: RefinerConfig, index: FaceIndex) -> Path:
    """The refiner folder, checked by the one output rule (:func:`retarget.outputs.check_output`)."""
    from retarget.outputs import check_output

    out = cfg.out if cfg.out is not None else Path("models") / f"refiner_{index.root.name}"
    return check_output(out, kind="refiner", inputs=(cfg.data,), overwrite=cfg.overwrite)


def _make_pairs(index: FaceIndex, frames: np.ndarray, cfg: RefinerConfig, what: str) -> SelfPairs:
    try:
        return self_pairs(index, frames, cfg.exclude)
    except ValueError as exc:
        raise RetargetError(f"{index.root}: {exc} (--exclude {cfg.exclude}); {what}") from None


def _fit(net: FaceRefiner, pairs: SelfPairs, cfg: RefinerConfig, device: torch.device, amp: str) -> int:
    """Train ``net`` on ``pairs`` for ``cfg.steps`` or ``cfg.time_limit``; returns the steps done."""
    gen = torch.Generator().manual_seed(cfg.seed)
    opt = torch.optim.Adam(net.parameters(), lr=cfg.lr)
    dtype = amp_dtype(amp, device)
    scaler = torch.amp.GradScaler(device.type, enabled=dtype == torch.float16)
    step, started = 0, time.perf_counter()
    with make_progress("it") as progress:
        task = progress.add_task("refiner", total=cfg.steps)
        while step < cfg.steps and not (cfg.time_limit and time.perf_counter() - started >= cfg.time_limit):
            x, y, m = (t.to(device) for t in sample(pairs, cfg, gen))
            for group in opt.param_groups:
                group["lr"] = learning_rate(cfg, step, time.perf_counter() - started)
            with torch.autocast(device.type, dtype=dtype or torch.float32, enabled=dtype is not None):
                out = net(x)
            loss = masked_l1(out, y, m)
            check_loss(loss, step, cfg, command="train-refiner")
            update(loss, opt, scaler)
            step += 1
            progress.advance(task)
    return step


def train_refiner(cfg: RefinerConfig) -> RefinerResult:
    """Train a :class:`~retarget.nn.refiner.FaceRefiner` on ``cfg.data`` and write its folder.

    Raises:
        RetargetError: an option outside its range, a dataset that is missing, not faces or
            too small, an output folder that exists, or a loss or weights that went NaN or
            infinite (nothing is written).
    """
    from retarget.dataset.faceindex import face_index
    from retarget.run.info import DataInfo
    from retarget.run.refiner import save_refiner

    check_config(cfg)
    index = face_index(cfg.data)
    if index.size % cfg.factor:
        raise RetargetError(f"{cfg.data}: its {index.size} px faces do not divide by --factor {cfg.factor}")
    out = _out_folder(cfg, index)
    clean_stale_temps(out.parent)  # what a killed earlier run left beside it
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    device = resolve_device(cfg.device)
    amp = resolve_amp(cfg.amp, device, cfg.width)
    started = time.perf_counter()
    train_at, held_at = split_frames(index, cfg)
    with console.status(f"refiner: warping {len(train_at) + len(held_at)} faces into pairs"):
        pairs = _make_pairs(index, train_at, cfg, "extract more of the target's video")
        held = _make_pairs(index, held_at, cfg, "extract more of the target's video") if len(held_at) else pairs
    torch.manual_seed(cfg.seed)
    net = FaceRefiner(cfg.factor, cfg.width, cfg.blocks, cfg.smooth).to(device)
    steps = _fit(net, pairs, cfg, device, amp)
    got, warp = score(net, held, device)
    seconds = time.perf_counter() - started
    from retarget.dataset.manifest import read_dataset

    data = DataInfo.of_dataset(read_dataset(cfg.data), frames=len(train_at))
    save_refiner(out, net, cfg, data, steps, {"psnr": got, "psnr_warp": warp}, replace=cfg.overwrite)
    result = RefinerResult(out, steps, seconds, got, warp, precision_name(amp))
    console.print(
        f"refiner {out}: {index.size} px faces, {len(train_at)} pairs, {steps} steps in {seconds:.0f} s "
        f"({result.precision}); {got:.2f} dB vs {warp:.2f} dB for the plain warp on {len(held_at)} held-out faces",
        markup=False,
    )
    return result
