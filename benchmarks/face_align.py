"""Face alignment figures: frames aligned, jitter, template error, frames/s.

Usage: python benchmarks/face_align.py [--data ../shared/data] [--size 256] [--smooth S ...]

* Jitter: mean frame-to-frame displacement (crop pixels) of the eye centres mapped
  through the smoothed crop matrix, over consecutive aligned frames of one track.
  Also the same for all stable landmarks (eyes, nose, mouth corners), which a fit
  that pinned the eyes alone could not make small.
* Template error: mean distance of the aligned eye centres from the template's.
* Still face: carphone's first frame repeated 90 times with fresh sensor-like noise
  (Gaussian, sigma 4 grey levels) per frame. The head does not move, so every pixel
  of eye motion in the crop is jitter; this isolates what smoothing removes. Shake:
  mean frame-to-frame displacement, in crop pixels, of a fixed source point (the mean
  eye centre over all frames) mapped through each frame's crop matrix: what a viewer
  sees shaking.
* Speed: FaceAligner frames/s on 1280x720 frames (decoding excluded): bigbuckbunny
  (cartoon, mostly no human face, so the detector runs every frame) and carphone
  scaled x5 and padded to 1280x720 (a face in every frame, tracked).
"""

from __future__ import annotations

import argparse
import dataclasses
import time
from pathlib import Path

import av
import cv2
import numpy as np
from common import environment, load_average

from retarget.config import FaceConfig
from retarget.faces.align import STABLE_POINTS, apply, eye_centres, template_points
from retarget.faces.aligner import FaceAligner


def frames_of(path: Path) -> tuple[list[np.ndarray], list[float]]:
    images, times = [], []
    with av.open(str(path)) as c:
        for f in c.decode(video=0):
            images.append(f.to_ndarray(format="rgb24"))
            times.append(float(f.time) if f.time is not None else len(times) / 30.0)
    return images, times


def quality(images: list[np.ndarray], times: list[float], cfg: FaceConfig, size: int) -> dict[str, float]:
    aligner = FaceAligner(cfg, size)
    tmpl = template_points(size, cfg.margin)
    tmpl_eyes = eye_centres(tmpl)
    eyes, stable, tracks, mats, src_eyes = [], [], [], [], []
    for img, t in zip(images, times):
        face = aligner(img, t)
        if face is None:
            eyes.append(None)
            stable.append(None)
            tracks.append(None)
            mats.append(None)
            continue
        mats.append(face.matrix)
        src_eyes.append(eye_centres(face.landmarks))
        pts = apply(face.matrix, face.landmarks)
        eyes.append(eye_centres(pts))
        stable.append(pts[STABLE_POINTS])
        tracks.append(face.track)
    fixed = np.mean(src_eyes, axis=0) if src_eyes else np.zeros((2, 2))
    shake = [
        np.linalg.norm(apply(mats[i], fixed) - apply(mats[i - 1], fixed), axis=1).mean()
        for i in range(1, len(mats))
        if mats[i] is not None and mats[i - 1] is not None and tracks[i] == tracks[i - 1]
    ]
    jit_e, jit_s, err = [], [], []
    for i, e in enumerate(eyes):
        if e is None:
            continue
        err.append(np.linalg.norm(e - tmpl_eyes, axis=1).mean())
        if i and eyes[i - 1] is not None and tracks[i - 1] == tracks[i]:
            jit_e.append(np.linalg.norm(e - eyes[i - 1], axis=1).mean())
            jit_s.append(np.linalg.norm(stable[i] - stable[i - 1], axis=1).mean())
    return {
        "aligned": float(sum(e is not None for e in eyes)),
        "frames": float(len(images)),
        "jitter_eyes": float(np.mean(jit_e)) if jit_e else float("nan"),
        "jitter_stable": float(np.mean(jit_s)) if jit_s else float("nan"),
        "template_error": float(np.mean(err)) if err else float("nan"),
        "tracks": float(len({t for t in tracks if t is not None})),
        "shake": float(np.mean(shake)) if shake else float("nan"),
    }


def speed(
    images: list[np.ndarray], times: list[float], cfg: FaceConfig, size: int, repeat: int = 1
) -> tuple[float, float, int]:
    """(frames/s wall clock, frames per CPU second of this process, frames with a face)."""
    aligner = FaceAligner(cfg, size)
    aligner(images[0], times[0])  # load models, warm caches
    aligner.reset()
    n = found = 0
    t0, c0 = time.perf_counter(), time.process_time()
    for _ in range(repeat):
        aligner.reset()
        for img, t in zip(images, times):
            found += aligner(img, t) is not None
            n += 1
    return n / (time.perf_counter() - t0), n / (time.process_time() - c0), found


def pad_720p(img: np.ndarray) -> np.ndarray:
    h, w = img.shape[:2]
    s = 720 / h
    big = cv2.resize(img, (round(w * s), 720), interpolation=cv2.INTER_CUBIC)
    out = np.zeros((720, 1280, 3), np.uint8)
    x = (1280 - big.shape[1]) // 2
    out[:, x : x + big.shape[1]] = big[:, : 1280 - x]
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=str(Path(__file__).resolve().parents[2] / "shared" / "data"))
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument(
        "--smooth", type=float, nargs="*", default=None, help="smooth values to compare (default: 0 and the default)"
    )
    ap.add_argument("--no-speed", action="store_true")
    args = ap.parse_args()
    cv2.setNumThreads(2)
    try:
        import torch

        torch.set_num_threads(2)
    except ImportError:
        pass
    data = Path(args.data)
    print(environment())
    base = FaceConfig()
    print(f"FaceConfig defaults: {dataclasses.asdict(base)}")
    imgs, times = frames_of(data / "carphone_pristine.mp4")
    smooths = args.smooth if args.smooth is not None else [0.0, base.smooth]
    h, w = imgs[0].shape[:2]
    print(f"\ncarphone_pristine.mp4 ({len(imgs)} frames, {w}x{h}) at size {args.size}:")
    print(
        f"{'smooth':>7} {'aligned':>8} {'jitter eyes px':>15} {'jitter stable px':>17} {'template err px':>16} {'tracks':>7}"
    )
    for s in smooths:
        q = quality(imgs, times, dataclasses.replace(base, smooth=s), args.size)
        print(
            f"{s:>7.2f} {int(q['aligned']):>4}/{int(q['frames']):<3} {q['jitter_eyes']:>15.3f} "
            f"{q['jitter_stable']:>17.3f} {q['template_error']:>16.3f} {int(q['tracks']):>7}"
        )
    rng = np.random.default_rng(0)
    still = [np.clip(imgs[0] + rng.normal(0, 4, imgs[0].shape), 0, 255).astype(np.uint8) for _ in range(90)]
    still_t = [i / 30 for i in range(90)]
    print("\nstill face with per-frame noise (90 frames):")
    for s in smooths:
        q = quality(still, still_t, dataclasses.replace(base, smooth=s), args.size)
        print(
            f"  smooth {s:4.2f}: shake {q['shake']:.3f} px, jitter eyes {q['jitter_eyes']:.3f} px, "
            f"template err {q['template_error']:.3f} px, aligned {int(q['aligned'])}/{len(still)}"
        )
    if args.no_speed:
        return
    print("\nFaceAligner speed on 1280x720 frames (decoding excluded):")
    big = [pad_720p(i) for i in imgs]
    fps, cpu, found = speed(big, times, base, args.size)
    print(
        f"  carphone x5 padded to 1280x720: {fps:6.1f} frames/s, {cpu:6.1f} frames/CPU-s ({found}/{len(big)} aligned)"
    )
    bimgs, btimes = frames_of(data / "bigbuckbunny.mp4")
    fps, cpu, found = speed(bimgs, btimes, base, args.size)
    print(f"  bigbuckbunny 1280x720:          {fps:6.1f} frames/s, {cpu:6.1f} frames/CPU-s ({found}/{len(bimgs)} face)")
    print("\npaste_back into 1280x720 frames (256 px crop, CPU time per call):")
    from retarget.faces.paste import paste_back

    face = FaceAligner(base, args.size)(big[0], 0.0)
    if face is not None:
        for cm in ("lab", "none"):
            c0 = time.process_time()
            for _ in range(30):
                paste_back(big[0], face.crop, face.matrix, face.landmarks, color_match=cm)
            print(f"  color_match {cm}: {(time.process_time() - c0) / 30 * 1000:5.2f} ms")
    print(f"after: {load_average()}")


if __name__ == "__main__":
    main()
