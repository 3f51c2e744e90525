"""``retarget train-enhancer``: learn a face enhancer from the target person's own frames.

The dataset is that person's faces extracted at ``scale`` times the face model's size
(``retarget extract b.mp4 --align face --size 256`` for a 64 px model and ``--scale 4``).
Each step takes ``batch_size`` random patches of random frames (flipped at random), makes
their input with :func:`retarget.nn.enhancer.degrade` (shrunk, blurred, noisy) and
minimises the L1 distance of the enhancer's output to the patch. No discriminator: it
trains in minutes on a CPU. At the end it scores itself on up to :data:`SCORE_FRAMES`
whole frames of the dataset, degraded by half the largest blur, against plain bilinear
upsampling (PSNR), and writes the enhancer folder (:mod:`retarget.run.enhancer`).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from retarget.atomic import clean_stale_temps
from retarget.nn.budget import check_enhancer
from retarget.config import EnhancerConfig, RefinerConfig
from retarget.dataset.manifest import Dataset, read_dataset
from retarget.device import amp_dtype, precision_name, resolve_amp, resolve_device
from retarget.errors import RetargetError
from retarget.nn.enhancer import FaceEnhancer, degrade, gaussian_blur
from retarget.options import check_config
from retarget.progress import console, make_progress
from retarget.run.enhancer import save_enhancer
from retarget.run.info import DataInfo

#: frames the final score is measured on (evenly spaced over the dataset)
SCORE_FRAMES = 32
#: share of the run after which the learning rate falls linearly to half
DECAY_FROM = 0.75


@dataclass
class EnhancerResult:
    """What :func:`train_enhancer` did."""

    out: Path  # the enhancer folder written
    steps: int  # optimisation steps done
    seconds: float  # training time
    psnr: float  # dB, the enhancer on its scoring frames
    psnr_bilinear: float  # dB, bilinear upsampling of the same inputs
    precision: str  # bf16, fp16 or fp32


def check_data(ds: Dataset, cfg: EnhancerConfig) -> None:
    """RetargetError when ``ds`` cannot teach an enhancer of ``cfg`` (not faces, sizes that do not divide)."""
    if ds.align != "face":
        raise RetargetError(f"{ds.root}: not a face dataset (extract it with --align face)")
    if cfg.scale & (cfg.scale - 1):
        raise RetargetError(f"--scale {cfg.scale}: must be 2, 4 or 8")
    if ds.size % cfg.scale:
        raise RetargetError(f"{ds.root}: its {ds.size} px faces do not divide by --scale {cfg.scale}")
    if cfg.patch % cfg.scale or cfg.patch > ds.size:
        raise RetargetError(f"--patch {cfg.patch}: must divide by --scale {cfg.scale} and fit in {ds.size} px faces")
    if not ds.frames:
        raise RetargetError(f"{ds.root}: no frames")


def load_frames(ds: Dataset, limit: int) -> torch.Tensor:
    """Up to ``limit`` frames of ``ds``, evenly spaced, as ``[N, 3, S, S]`` uint8."""
    keep = np.unique(np.linspace(0, len(ds.frames) - 1, min(limit, len(ds.frames))).round().astype(int))
    images = [ds.load(int(i)) for i in keep]
    for i, im in zip(keep, images):
        if im.shape[:2] != (ds.size, ds.size):
            raise RetargetError(f"{ds.path(int(i))}: {im.shape[1]}x{im.shape[0]}, not {ds.size} px square")
    return torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).contiguous()


def sample(frames: torch.Tensor, cfg: EnhancerConfig, gen: torch.Generator) -> torch.Tensor:
    """``batch_size`` random patches (side ``patch``, corners on the scale grid, flipped at random) in [-1, 1]."""
    n, _, s, _ = frames.shape
    idx = torch.randint(0, n, (cfg.batch_size,), generator=gen)
    cells = (s - cfg.patch) // cfg.scale + 1
    corner = torch.randint(0, cells, (cfg.batch_size, 2), generator=gen) * cfg.scale
    flips = torch.rand(cfg.batch_size, generator=gen) < 0.5
    patches = []
    for i, (y, x), flip in zip(idx.tolist(), corner.tolist(), flips.tolist()):
        p = frames[i, :, y : y + cfg.patch, x : x + cfg.patch]
        patches.append(p.flip(-1) if flip else p)
    return torch.stack(patches).float().div(127.5).sub(1.0)


def psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    """PSNR (dB) of images in [-1, 1]."""
    mse = float(((a.clamp(-1, 1) - b) / 2).pow(2).mean())
    return 10 * math.log10(1.0 / max(mse, 1e-12))


@torch.no_grad()
def score(net: FaceEnhancer, frames: torch.Tensor, cfg: EnhancerConfig, device: torch.device) -> tuple[float, float]:
    """(enhancer PSNR, bilinear PSNR) on up to :data:`SCORE_FRAMES` whole frames, blurred by ``blur / 2``."""
    keep = np.unique(np.linspace(0, len(frames) - 1, min(SCORE_FRAMES, len(frames))).round().astype(int))
    hi = frames[torch.from_numpy(keep)].float().div(127.5).sub(1.0).to(device)
    lo = gaussian_blur(F.avg_pool2d(hi, cfg.scale), torch.full((len(keep),), cfg.blur / 2, device=device))
    net.eval()
    out = torch.cat([net(lo[i : i + 8]).float() for i in range(0, len(lo), 8)])
    base = F.interpolate(lo, scale_factor=cfg.scale, mode="bilinear", align_corners=False)
    return psnr(out, hi), psnr(base, hi)


def learning_rate(cfg: EnhancerConfig | RefinerConfig, step: int, elapsed: float) -> float:
    done = max(step / cfg.steps, elapsed / cfg.time_limit if cfg.time_limit else 0.0)
    return cfg.lr * (1.0 if done < DECAY_FROM else 1.0 - 0.5 * (done - DECAY_FROM) / (1.0 - DECAY_FROM))


def update(loss: torch.Tensor, opt: torch.optim.Optimizer, scaler: torch.amp.GradScaler) -> None:
    """One optimiser step on ``loss`` through ``scaler`` (a no-op scaler outside fp16)."""
    opt.zero_grad(set_to_none=True)
    scaler.scale(loss).backward()
    scaler.step(opt)
    scaler.update()


def check_loss(
    loss: torch.Tensor, step: int, cfg: EnhancerConfig | RefinerConfig, command: str = "train-enhancer"
) -> None:
    """RetargetError when the loss of step ``step + 1`` is NaN or infinite (training diverged: nothing is saved)."""
    value = float(loss.detach())
    if not math.isfinite(value):
        raise RetargetError(
            f"{command}: the loss is not finite ({value}) at step {step + 1}; training stopped, nothing was "
            f"written (try a lower --lr than {cfg.lr:g}, or --amp off)"
        )


def _out_folder(cfg: EnhancerConfig, ds: Dataset) -> Path:
    """The enhancer folder, checked by the one output rule (:func:`retarget.outputs.check_output`)."""
    from retarget.outputs import check_output

    out = cfg.out if cfg.out is not None else Path("models") / f"enhancer_{ds.root.name}"  # -o "" is refused
    return check_output(out, kind="enhancer", inputs=(cfg.data,), overwrite=cfg.overwrite)


def train_enhancer(cfg: EnhancerConfig) -> EnhancerResult:
    """Train a :class:`~retarget.nn.enhancer.FaceEnhancer` on ``cfg.data`` and write its folder.

    Raises:
        RetargetError: an option outside its range, a dataset that is missing, not faces or
            of a size the scale does not divide, an output folder that exists, or a loss or
            weights that went NaN or infinite (nothing is written).
    """
    check_config(cfg)
    ds = read_dataset(cfg.data)
    check_data(ds, cfg)
    out = _out_folder(cfg, ds)
    clean_stale_temps(out.parent)  # what a killed earlier run left beside it
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    device = resolve_device(cfg.device)
    check_enhancer(cfg, ds.size, len(ds.frames), device)  # memory, before the frames are loaded
    amp = resolve_amp(cfg.amp, device, cfg.width)
    frames = load_frames(ds, cfg.max_frames)
    torch.manual_seed(cfg.seed)
    gen = torch.Generator().manual_seed(cfg.seed)
    net = FaceEnhancer(cfg.scale, cfg.width, cfg.blocks).to(device)
    opt = torch.optim.Adam(net.parameters(), lr=cfg.lr)
    dtype = amp_dtype(amp, device)
    scaler = torch.amp.GradScaler(device.type, enabled=dtype == torch.float16)
    step, started = 0, time.perf_counter()
    with make_progress("it") as progress:
        task = progress.add_task("enhancer", total=cfg.steps)
        while step < cfg.steps and not (cfg.time_limit and time.perf_counter() - started >= cfg.time_limit):
            hi = sample(frames, cfg, gen)
            lo = degrade(hi, cfg.scale, cfg.blur, cfg.noise, gen)
            hi, lo = hi.to(device), lo.to(device)
            for group in opt.param_groups:
                group["lr"] = learning_rate(cfg, step, time.perf_counter() - started)
            with torch.autocast(device.type, dtype=dtype or torch.float32, enabled=dtype is not None):
                out_hi = net(lo)
            loss = (out_hi.float() - hi).abs().mean()
            check_loss(loss, step, cfg)
            update(loss, opt, scaler)
            step += 1
            progress.advance(task)
    seconds = time.perf_counter() - started
    got, base = score(net, frames, cfg, device)
    data = DataInfo.of_dataset(ds, frames=len(frames))
    save_enhancer(out, net, cfg, data, step, {"psnr": got, "psnr_bilinear": base}, replace=cfg.overwrite)
    result = EnhancerResult(out, step, seconds, got, base, precision_name(amp))
    console.print(
        f"enhancer {out}: {data.size // cfg.scale} -> {data.size} px, {step} steps in {seconds:.0f} s "
        f"({result.precision}); {got:.2f} dB vs {base:.2f} dB bilinear on {min(SCORE_FRAMES, len(frames))} frames",
        markup=False,
    )
    return result
