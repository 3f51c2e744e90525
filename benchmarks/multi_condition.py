"""Multi-domain model: does G obey its target label? ``concat`` against ``modulate``.

    python benchmarks/multi_condition.py                      # 2 seeds x 300 steps, ~2 min on 1 thread
    python benchmarks/multi_condition.py --steps 600 --seeds 0 1 2 --size 32

Four domains with an exact truth: the demo's synthetic look A (``retarget.demo.synth``)
and its three stylisations of the quality benchmark (``quality_styles.py``: painterly,
cartoon, duotone). Each domain trains on clips of its own motions (unpaired), in one
multi-domain Recycle-GAN (tiny preset, default loss, image pool 50), with sources
and targets from :func:`retarget.nn.domains.domain_pairs`; both conditions see the
same weights' seed, data and draws, interleaved step by step.

On held-out clips (new motions), for every source frame ``x`` and style ``k``, the
translation ``G(x, k)`` is compared with the four truths (``x`` and its three
stylisations): ``obeyed`` is the share of translations nearest (L1) to the truth of
``k``, ``psnr`` the PSNR to that truth (dB); ``back`` is the PSNR of ``G(style_k(x),
source)`` to ``x``. Chance for ``obeyed`` is 1/4. The mean-colour distance to the
target truth (``colour``, RGB 0-255) is the coarsest view of the same question.
"""

from __future__ import annotations

import argparse
import json
import time

from common import environment  # noqa: I001

import numpy as np  # noqa: E402
import torch  # noqa: E402

from quality_styles import STYLES  # noqa: E402
from retarget.config import LossConfig, model_preset, replace  # noqa: E402
from retarget.demo.synth import make_motion, render_clip  # noqa: E402
from retarget.nn.domains import domain_pairs  # noqa: E402
from retarget.nn.networks import build_networks  # noqa: E402
from retarget.nn.objectives import make_objective  # noqa: E402
from retarget.nn.pool import ImagePool  # noqa: E402
from retarget.nn.step import Stepper, make_optimizers  # noqa: E402
from retarget.nn.warp_loss import add_motion  # noqa: E402

NAMES = ("source", *STYLES)


def clips(seed: int, domain: int, count: int, frames: int, size: int) -> list[np.ndarray]:
    """``count`` clips ``T x size x size x 3`` uint8 of domain ``domain`` (0 = the look A itself)."""
    out = []
    for i in range(count):
        clip = render_clip("A", make_motion(frames, seed * 1000 + 100 * domain + i), size, seed)
        if domain:
            clip = np.stack([STYLES[NAMES[domain]](f) for f in clip])
        out.append(clip)
    return out


def to_tensor(frames: np.ndarray) -> torch.Tensor:
    """``... x H x W x 3`` uint8 -> ``... x 3 x H x W`` float in [-1, 1]."""
    t = torch.from_numpy(np.ascontiguousarray(frames)).float().div(127.5).sub(1)
    return t.movedim(-1, -3)


def sample(data: list[list[np.ndarray]], src: torch.Tensor, rng: np.random.Generator, frames: int) -> torch.Tensor:
    """One window of ``frames`` consecutive frames from a random clip of each sample's source domain."""
    out = []
    for s in src.tolist():
        clip = data[s][rng.integers(len(data[s]))]
        t = rng.integers(len(clip) - frames + 1)
        win = clip[t : t + frames]
        out.append(win[:, :, ::-1] if rng.random() < 0.5 else win)
    return to_tensor(np.stack(out))


def evaluate(G: torch.nn.Module, test: list[np.ndarray]) -> dict[str, float]:
    """Label obedience of ``G`` on held-out source clips (see the module docstring)."""
    x = to_tensor(np.concatenate(test))
    truths = [x] + [to_tensor(np.stack([STYLES[n](f) for f in np.concatenate(test)])) for n in NAMES[1:]]
    hits, psnr, colour, back = [], [], [], []
    with torch.no_grad():
        for k in range(1, len(NAMES)):
            y = G(x, torch.full((x.shape[0],), k, dtype=torch.long))
            dist = torch.stack([(y - t).abs().flatten(1).mean(1) for t in truths], 1)
            hits.append((dist.argmin(1) == k).float())
            mse = (y - truths[k]).square().flatten(1).mean(1).clamp_min(1e-10)
            psnr.append(10 * torch.log10(4 / mse))  # range 2 in [-1, 1]
            colour.append((y - truths[k]).mean((2, 3)).norm(dim=1) * 127.5)
            b = G(truths[k], torch.zeros(x.shape[0], dtype=torch.long))
            back.append(10 * torch.log10(4 / (b - x).square().flatten(1).mean(1).clamp_min(1e-10)))
    return {
        "obeyed": torch.cat(hits).mean().item(),
        "psnr": torch.cat(psnr).mean().item(),
        "colour": torch.cat(colour).mean().item(),
        "back": torch.cat(back).mean().item(),
        "per_style_obeyed": [h.mean().item() for h in hits],
    }


def run(args: argparse.Namespace) -> dict:
    data = [clips(100 + d, d, 4, 24, args.size) for d in range(len(NAMES))]
    test = clips(999, 0, 2, 12, args.size)
    results: dict = {c: [] for c in args.conditions}
    for seed in args.seeds:
        steppers, seconds = {}, {c: 0.0 for c in args.conditions}
        for c in args.conditions:
            cfg = replace(model_preset("tiny", size=args.size), domains=len(NAMES), condition=c)
            torch.manual_seed(seed)
            nets = build_networks(cfg)
            g_opt, d_opt = make_optimizers(nets)
            obj = make_objective(cfg, LossConfig(), nets)
            steppers[c] = Stepper(obj, g_opt, d_opt, pools={"D": ImagePool(50, seed)})
        rng = np.random.default_rng(seed)
        for step in range(args.steps):
            src, dst = domain_pairs(seed, step, len(NAMES), args.batch)
            batch = add_motion({"x": sample(data, src, rng, 3), "src": src, "dst": dst})
            for c, st in steppers.items():
                t0 = time.perf_counter()
                st.step(batch)
                seconds[c] += time.perf_counter() - t0
        for c, st in steppers.items():
            r = evaluate(st.nets["G"], test)
            r.update(seed=seed, s_per_step=seconds[c] / args.steps)
            results[c].append(r)
            print(c, json.dumps({k: (round(v, 3) if isinstance(v, float) else v) for k, v in r.items()}), flush=True)
    return results


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    ap.add_argument("--size", type=int, default=32)
    ap.add_argument("--batch", type=int, default=2)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--conditions", nargs="+", default=["concat", "modulate"])
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    print(environment(args.threads))
    results = run(args)
    print("condition  obeyed  psnr_dB  colour  back_dB  s/step   (means over seeds; chance obeyed 0.25)")
    for c, rs in results.items():
        mean = {k: float(np.mean([r[k] for r in rs])) for k in ("obeyed", "psnr", "colour", "back", "s_per_step")}
        print(
            f"{c:9s}  {mean['obeyed']:.3f}   {mean['psnr']:6.2f}  {mean['colour']:6.1f}  {mean['back']:6.2f}"
            f"   {mean['s_per_step']:.3f}"
        )


if __name__ == "__main__":
    main()
