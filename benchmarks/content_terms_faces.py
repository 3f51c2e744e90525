"""Do the content-preserving terms keep a face's landmarks? A face pair with known truth.

    python benchmarks/content_terms_faces.py --video ../shared/data/carphone_pristine.mp4 \\
        --out /tmp/ct_faces --steps 600 --feature-match 0 1 10

Domain A: the face-aligned crops of ``--video`` (``retarget extract --align face``).
Domain B: the same crops recoloured (RGB -> BRG channel rotation and gamma 0.8), so the
correct translation of a frame is known, ``T(a)``, and has the same landmarks as ``a``.
For each ``--feature-match`` weight one CycleGAN run (``--preset`` at ``--size``) is
trained with the same seed; every A frame is translated, and the mean 68-landmark
error (dlib, crops upscaled x4; mean point distance / inter-ocular distance) of
``G_AB(a)`` against ``a`` is reported, with the error of ``T(a)`` against ``a`` as the
detector's floor and the mean |G_AB(a) - T(a)| as a colour check.

The landmark error is computed here with :mod:`retarget.faces.backends`; once
``retarget eval --faces`` exists it is the command to use.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

from retarget.config import LossConfig, TrainConfig, model_preset  # noqa: E402
from retarget.faces.backends import get_backend  # noqa: E402
from retarget.train.data import load_domain  # noqa: E402
from retarget.train import train  # noqa: E402


def recolour(img: np.ndarray) -> np.ndarray:
    """The known A -> B map: RGB -> BRG and gamma 0.8 (uint8 RGB in, uint8 RGB out)."""
    x = (img[..., [2, 0, 1]].astype(np.float32) / 255.0) ** 0.8
    return np.clip(x * 255.0 + 0.5, 0, 255).astype(np.uint8)


def landmarks(backend, img: np.ndarray, scale: int = 4) -> np.ndarray | None:
    """68 landmarks of the largest face of a small crop (upscaled for dlib), in crop px."""
    big = cv2.resize(img, None, fx=scale, fy=scale, interpolation=cv2.INTER_CUBIC)
    boxes = backend.detect(big)
    if not boxes:
        return None
    box = max(boxes, key=lambda b: (b[2] - b[0]) * (b[3] - b[1]))
    return backend.landmarks(big, box) / scale


def error(src: np.ndarray, out: np.ndarray | None) -> float:
    """Mean landmark distance over the outer-eye-corner distance (NaN without a face)."""
    if out is None:
        return float("nan")
    iod = float(np.hypot(*(src[45] - src[36])))
    return float(np.linalg.norm(src - out, axis=1).mean() / iod)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--video", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--preset", default="tiny")
    ap.add_argument("--steps", type=int, default=600)
    ap.add_argument("--feature-match", type=float, nargs="+", default=[0.0, 1.0, 10.0])
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    torch.set_num_threads(1)
    out = Path(args.out)
    a_dir = out / "A"
    if not (a_dir / "manifest.json").exists():
        subprocess.run(
            [
                sys.executable,
                "-m",
                "retarget",
                "extract",
                args.video,
                "--align",
                "face",
                "--size",
                str(args.size),
                "-o",
                str(a_dir),
                "--overwrite",
            ],
            check=True,
            capture_output=True,
        )
    frames = load_domain(str(a_dir), args.size).frames  # T x S x S x 3 uint8 RGB
    b_dir = out / "B"
    b_dir.mkdir(parents=True, exist_ok=True)
    for i, img in enumerate(frames):
        cv2.imwrite(str(b_dir / f"{i:05d}.png"), cv2.cvtColor(recolour(img), cv2.COLOR_RGB2BGR))

    backend = get_backend("dlib")
    src = [landmarks(backend, f) for f in frames]
    keep = [i for i, s in enumerate(src) if s is not None]
    truth = np.stack([recolour(f) for f in frames])
    floor = [error(src[i], landmarks(backend, truth[i])) for i in keep]
    result = {"frames": len(frames), "faces_in_source": len(keep), "floor_T(a)": float(np.nanmean(floor)), "runs": {}}
    print(json.dumps(result), flush=True)
    for w in args.feature_match:
        t = time.perf_counter()
        cfg = TrainConfig(
            a_dir=str(a_dir), b_dir=str(b_dir), out=str(out / f"run_fm{w:g}"), preset=args.preset,
            model=model_preset(args.preset, model="cyclegan", size=args.size), loss=LossConfig(feature_match=w),
            steps=args.steps, seed=args.seed, overwrite=True, checkpoint_every=args.steps, preview_every=args.steps,
            log_every=50, threads=1, device="cpu",
        )  # fmt: skip
        g = train(cfg).networks["G_AB"].eval()
        with torch.no_grad():
            x = torch.from_numpy(frames).permute(0, 3, 1, 2).float() / 127.5 - 1
            y = torch.cat([g(x[i : i + 16]) for i in range(0, len(x), 16)])
        fake = ((y.clamp(-1, 1) + 1) * 127.5).round().byte().permute(0, 2, 3, 1).numpy()
        errs = [error(src[i], landmarks(backend, fake[i])) for i in keep]
        found = int(np.isfinite(errs).sum())
        result["runs"][f"feature_match={w:g}"] = {
            "landmark_error": float(np.nanmean(errs)) if found else None,
            "faces_found": found,
            "l1_to_truth": float(np.abs(fake.astype(np.float32) - truth.astype(np.float32)).mean() / 255),
            "train_s": round(time.perf_counter() - t, 1),
        }
        print(json.dumps({f"feature_match={w:g}": result["runs"][f"feature_match={w:g}"]}), flush=True)
    (out / "result.json").write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
