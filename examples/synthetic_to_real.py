#!/usr/bin/env python
"""Synthetic-to-real with a task loss: a detector trained on domain A guards the translation.

    python examples/synthetic_to_real.py --out work/s2r               # a few minutes on a CPU
    python examples/synthetic_to_real.py --out work/s2r --compare     # also train without the term

Domain A plays the synthetic data (a red ellipse on a warm gradient, where the
object's position is known exactly), domain B the "real" look (a cyan star on navy
stripes); both come from :mod:`retarget.demo.synth`. Steps:

1. render one long clip per domain and write its frames as image folders (the datasets);
2. train a tiny detector-like network on A frames: it predicts a heat map of the
   shape's centre (and its soft-argmax x, y), supervised by the known motion; random
   channel orders and inversions make it read the shape's place, not its colours
   (a detector that only works on A's exact colours would fight the translation);
3. export it with ``torch.jit.script`` (a TorchScript file, the only format
   ``--content-model`` accepts);
4. train retarget (CycleGAN or Recycle-GAN, tiny preset) with the detector as the
   content network of the A -> B direction (``content_model_a``): the loss
   ``|f(a) - f(G_AB(a))|_1`` asks the translation to keep what the detector reads;
5. translate held-out A frames and measure where the shape ended up, with the
   appearance-agnostic centroid of :func:`retarget.demo.synth.object_centroids`
   against the true positions (in px), and the detector's own reading of them.

``--compare`` trains the same run without the term, so the two errors can be set
side by side. Writes ``data/A``, ``data/B``, ``detector.pt``, ``run_content/`` (and
``run_plain/``) and ``summary.json`` under ``--out``. The same pattern works with any
task network: export it with ``torch.jit.script(net).save("f.pt")`` and pass
``retarget train A B --content-model-a f.pt``.
"""

from __future__ import annotations

import argparse
import json
import sys
import warnings
from pathlib import Path

import cv2
import numpy as np
import torch
from torch import Tensor, nn

from retarget.config import LossConfig, TrainConfig, model_preset
from retarget.demo import synth
from retarget.errors import RetargetError
from retarget.train import train


class CentreNet(nn.Module):
    """A tiny detector: ``[N, 3, S, S]`` in [-1, 1] -> heat map ``[N, 1, S/4, S/4]`` in
    (0, 1) and the soft-argmax centre ``[N, 2]`` (x, y in [0, 1])."""

    def __init__(self, width: int = 16) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(3, width, 3, 2, 1), nn.ReLU(),
            nn.Conv2d(width, 2 * width, 3, 2, 1), nn.ReLU(),
            nn.Conv2d(2 * width, 2 * width, 3, 1, 2, dilation=2), nn.ReLU(),
            nn.Conv2d(2 * width, 1, 1),
        )  # fmt: skip

    def forward(self, x: Tensor) -> dict[str, Tensor]:
        logits = self.body(x)
        n, _, h, w = logits.shape
        p = torch.softmax(logits.flatten(1), 1).view(n, 1, h, w)
        xs = (torch.arange(w, dtype=x.dtype, device=x.device) + 0.5) / w
        ys = (torch.arange(h, dtype=x.dtype, device=x.device) + 0.5) / h
        xy = torch.stack([(p.sum(2).squeeze(1) * xs).sum(1), (p.sum(3).squeeze(1) * ys).sum(1)], 1)
        return {"heat": torch.sigmoid(logits), "xy": xy}


def clip(domain: str, frames: int, size: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """``T x S x S x 3`` uint8 frames of one clip and the true centres ``(T, 2)`` in [0, 1]."""
    s = synth.clip_seed(seed, domain, 0)  # type: ignore[arg-type]
    motion = synth.make_motion(frames, s)
    return synth.render_clip(domain, motion, size, seed=s), np.stack([motion.x, motion.y], 1)  # type: ignore[arg-type]


def to_tensor(frames: np.ndarray) -> Tensor:
    """uint8 ``T x H x W x 3`` -> float ``[T, 3, H, W]`` in [-1, 1]."""
    return torch.from_numpy(frames).permute(0, 3, 1, 2).float() / 127.5 - 1


def write_folder(folder: Path, frames: np.ndarray) -> str:
    folder.mkdir(parents=True, exist_ok=True)
    for i, img in enumerate(frames):
        cv2.imwrite(str(folder / f"{i:05d}.png"), cv2.cvtColor(img, cv2.COLOR_RGB2BGR))
    return str(folder)


def recolour(x: Tensor, g: torch.Generator) -> Tensor:
    """Per image, a random channel order and a random sign: the detector learns where the
    shape is, not which colours it has, so it can read a translation too."""
    perms = torch.stack([torch.randperm(3, generator=g) for _ in range(len(x))])
    sign = torch.where(torch.rand(len(x), 1, 1, 1, generator=g) < 0.5, -1.0, 1.0)
    return sign * torch.gather(x, 1, perms.view(-1, 3, 1, 1).expand_as(x))


def train_detector(frames: np.ndarray, centres: np.ndarray, steps: int, seed: int) -> CentreNet:
    """Fit :class:`CentreNet` to a Gaussian at each true centre (BCE on the heat map, L1 on
    x, y), on colour-augmented A frames."""
    torch.manual_seed(seed)
    net = CentreNet()
    x, xy = to_tensor(frames), torch.from_numpy(centres).float()
    h = frames.shape[1] // 4
    grid = (torch.arange(h).float() + 0.5) / h
    d2 = (grid.view(1, 1, h) - xy[:, 0].view(-1, 1, 1)) ** 2 + (grid.view(1, h, 1) - xy[:, 1].view(-1, 1, 1)) ** 2
    target = torch.exp(-d2 / (2 * 0.06**2)).unsqueeze(1)
    opt = torch.optim.Adam(net.parameters(), lr=3e-3)
    g = torch.Generator().manual_seed(seed)
    for _ in range(steps):
        idx = torch.randint(0, len(x), (16,), generator=g)
        out = net(recolour(x[idx], g))
        loss = nn.functional.binary_cross_entropy(out["heat"], target[idx]) + (out["xy"] - xy[idx]).abs().mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    return net.eval()


@torch.no_grad()
def translate(g_ab: nn.Module, frames: np.ndarray) -> np.ndarray:
    out = torch.cat([g_ab(to_tensor(frames[i : i + 16])) for i in range(0, len(frames), 16)])
    return ((out.clamp(-1, 1) + 1) * 127.5).round().byte().permute(0, 2, 3, 1).numpy()


def run(out: Path, name: str, data: tuple[str, str], detector: str | None, args: argparse.Namespace) -> torch.nn.Module:
    loss = LossConfig(content_model_a=detector, content=args.content)
    cfg = TrainConfig(
        a_dir=data[0], b_dir=data[1], out=str(out / name), preset="tiny",
        model=model_preset("tiny", model=args.model, size=args.size), loss=loss, steps=args.steps,
        flip=False, seed=args.seed, overwrite=True, checkpoint_every=args.steps,
        preview_every=max(args.steps // 3, 1), log_every=max(args.steps // 50, 1), threads=1, device="cpu",
    )  # fmt: skip
    return train(cfg).networks["G_AB"].eval()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--out", default="synthetic_to_real_out", help="working folder")
    p.add_argument("--size", type=int, default=64, help="frame side (px)")
    p.add_argument("--frames", type=int, default=240, help="frames per domain")
    p.add_argument("--steps", type=int, default=400, help="retarget training steps")
    p.add_argument("--detector-steps", type=int, default=300, help="detector training steps")
    p.add_argument("--content", type=float, default=10.0, help="weight of the content (task) term")
    p.add_argument("--model", choices=["cyclegan", "recycle"], default="cyclegan")
    p.add_argument("--compare", action="store_true", help="also train without the content term")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    out = Path(args.out)
    try:
        frames_a, centres_a = clip("A", args.frames, args.size, args.seed)
        frames_b, _ = clip("B", args.frames, args.size, args.seed)
        held, held_xy = clip("A", 48, args.size, args.seed + 1)
        data = (write_folder(out / "data" / "A", frames_a), write_folder(out / "data" / "B", frames_b))

        detector = train_detector(frames_a, centres_a, args.detector_steps, args.seed)
        path = out / "detector.pt"
        with warnings.catch_warnings():  # torch >= 2.9 marks TorchScript deprecated; it is what retarget loads
            warnings.simplefilter("ignore", DeprecationWarning)
            torch.jit.script(detector).save(str(path))
        with torch.no_grad():
            own = detector(to_tensor(held))["xy"].numpy() - held_xy
        summary: dict = {"detector_error_px_on_A": float(np.linalg.norm(own, axis=1).mean() * args.size)}

        runs = [("run_content", str(path))] + ([("run_plain", None)] if args.compare else [])
        for name, f in runs:
            fake = translate(run(out, name, data, f, args), held)
            with torch.no_grad():
                read = detector(to_tensor(fake))["xy"].numpy()
            found = synth.object_centroids(fake)
            summary[name] = {
                "centroid_error_px": float(np.linalg.norm(found - held_xy, axis=1).mean() * args.size),
                "detector_error_px": float(np.linalg.norm(read - held_xy, axis=1).mean() * args.size),
                "mean_rgb": [round(v, 1) for v in synth.mean_rgb(fake).tolist()],
            }
        summary["mean_rgb_B"] = [round(v, 1) for v in synth.mean_rgb(frames_b).tolist()]
    except RetargetError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    print(json.dumps(summary, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
