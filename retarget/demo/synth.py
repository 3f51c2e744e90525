"""Two procedural, seeded synthetic video domains for the demo and the tests.

Both domains are rendered from the same kind of motion stream (:class:`Motion`: a
shape bouncing around the frame along a smooth path while it rotates and pulses in
size), so motion is domain-independent and only the appearance differs:

* domain **A**: warm palette, a red ellipse with a yellow dot, on a smooth
  peach-to-cream gradient;
* domain **B**: cool palette, a cyan five-pointed star, on a dark navy background
  with diagonal stripes and fixed grain.

Because the motion of a clip is a plain parameter stream, the same motion can be
rendered both ways, and the centroid of the shape (:func:`object_centroids`) can be
recovered from any frame of either look. That is what the demo's motion check
uses: the translated A clip should keep A's centroid track while its colours move to
B's (:func:`mean_rgb`).

Every clip carries a seeded mono tone as an AAC audio track, so the demo exercises
the audio path of ``render``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Literal, Sequence

import cv2
import numpy as np

from retarget.atomic import atomic_file

Domain = Literal["A", "B"]

#: Colours (RGB uint8) of the two looks; the test of the demo reads them.
PALETTE = {
    "A": {"top": (252, 226, 178), "bottom": (238, 160, 112), "shape": (196, 34, 30), "dot": (255, 214, 64)},
    "B": {"bg": (18, 28, 70), "stripe": (34, 52, 108), "shape": (90, 226, 232)},
}


@dataclass(frozen=True)
class Motion:
    """A motion parameter stream of ``T`` frames, independent of any appearance.

    All lengths are fractions of the frame side so a motion renders alike at any size.

    Attributes:
        x, y: ``(T,)`` float64 centre of the shape in ``[0, 1]`` (x right, y down).
        scale: ``(T,)`` float64 radius of the shape as a fraction of the side, ~0.1-0.22.
        angle: ``(T,)`` float64 rotation in radians (unbounded).
    """

    x: np.ndarray
    y: np.ndarray
    scale: np.ndarray
    angle: np.ndarray

    def __len__(self) -> int:
        return len(self.x)


def _bounce(start: float, velocity: float, t: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """Position of a point moving at constant speed between two walls (a triangle wave)."""
    span = hi - lo
    u = np.mod(start - lo + velocity * t, 2 * span)
    return lo + np.where(u > span, 2 * span - u, u)


def make_motion(frames: int, seed: int) -> Motion:
    """A seeded smooth motion: bouncing drift plus a slow wobble, rotation, pulsing size.

    Args:
        frames: number of frames ``T`` (>= 1).
        seed: any integer; the same seed always gives the same motion.

    Returns:
        :class:`Motion` with arrays of length ``frames``.
    """
    rng = np.random.default_rng([seed, 7919])
    t = np.arange(frames, dtype=np.float64)
    lo, hi = 0.28, 0.72  # the largest shape stays inside the frame
    speed = rng.uniform(0.010, 0.018)
    heading = rng.uniform(0, 2 * math.pi)
    wobble = rng.uniform(0.02, 0.04)
    phase = rng.uniform(0, 2 * math.pi, size=3)
    x = _bounce(rng.uniform(lo, hi), speed * math.cos(heading), t, lo, hi)
    y = _bounce(rng.uniform(lo, hi), speed * math.sin(heading), t, lo, hi)
    x = x + wobble * np.sin(2 * math.pi * t / 37.0 + phase[0])
    y = y + wobble * np.sin(2 * math.pi * t / 29.0 + phase[1])
    scale = 0.16 + 0.05 * np.sin(2 * math.pi * t / rng.uniform(30, 50) + phase[2])
    angle = rng.uniform(0, 2 * math.pi) + rng.choice([-1.0, 1.0]) * rng.uniform(0.04, 0.09) * t
    return Motion(x=x, y=y, scale=scale, angle=angle)


def _background(domain: Domain, size: int, seed: int) -> np.ndarray:
    """The static background of a clip, ``size x size x 3`` uint8 RGB."""
    if domain == "A":
        pal = PALETTE["A"]
        yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) / max(size - 1, 1)
        # a diagonal gradient with a soft radial glow: smooth, no texture
        w = np.clip(0.6 * yy + 0.4 * xx - 0.25 * np.exp(-((xx - 0.3) ** 2 + (yy - 0.3) ** 2) / 0.08), 0, 1)
        top, bottom = np.array(pal["top"], np.float32), np.array(pal["bottom"], np.float32)
        img = top[None, None] * (1 - w[..., None]) + bottom[None, None] * w[..., None]
        return np.clip(img, 0, 255).astype(np.uint8)
    pal = PALETTE["B"]
    rng = np.random.default_rng([seed, 104729])
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    period = max(size / 6.0, 4.0)
    stripes = (np.mod(xx + yy + rng.uniform(0, period), period) < period / 2)[..., None]
    img = np.where(stripes, np.array(pal["stripe"], np.float32), np.array(pal["bg"], np.float32))
    img = img + rng.normal(0, 6.0, size=(size, size, 1)).astype(np.float32)  # fixed grain
    return np.clip(img, 0, 255).astype(np.uint8)


def _star(cx: float, cy: float, r: float, angle: float) -> np.ndarray:
    k = np.arange(10)
    radius = np.where(k % 2 == 0, r, 0.45 * r)
    a = angle + k * math.pi / 5
    return np.stack([cx + radius * np.cos(a), cy + radius * np.sin(a)], axis=1)


def render_frame(domain: Domain, motion: Motion, index: int, size: int, background: np.ndarray) -> np.ndarray:
    """Draw frame ``index`` of ``motion`` in the look of ``domain``.

    Args:
        domain: "A" (warm ellipse on a gradient) or "B" (cool star on stripes).
        motion: the parameter stream; ``0 <= index < len(motion)``.
        size: frame side in pixels (>= 16).
        background: ``size x size x 3`` uint8 from the clip's static background.

    Returns:
        ``size x size x 3`` uint8 RGB.
    """
    img = background.copy()
    shift = 4  # sub-pixel precision of cv2 drawing, for smooth motion at small sizes
    f = float(1 << shift)
    cx, cy = motion.x[index] * size, motion.y[index] * size
    r = motion.scale[index] * size
    ang = float(motion.angle[index])
    if domain == "A":
        pal = PALETTE["A"]
        centre = (int(round(cx * f)), int(round(cy * f)))
        axes = (int(round(r * f)), int(round(0.72 * r * f)))
        cv2.ellipse(img, centre, axes, math.degrees(ang), 0, 360, pal["shape"], -1, cv2.LINE_AA, shift)
        # an off-centre dot makes the rotation visible on an ellipse
        dx, dy = 0.45 * r * math.cos(ang), 0.45 * r * math.sin(ang)
        dot = (int(round((cx + dx) * f)), int(round((cy + dy) * f)))
        cv2.circle(img, dot, int(round(0.2 * r * f)), pal["dot"], -1, cv2.LINE_AA, shift)
    else:
        pts = np.round(_star(cx, cy, 1.15 * r, ang) * f).astype(np.int32)
        cv2.fillPoly(img, [pts], PALETTE["B"]["shape"], cv2.LINE_AA, shift)
    return img


def render_clip(domain: Domain, motion: Motion, size: int, seed: int = 0) -> np.ndarray:
    """All frames of ``motion`` in the look of ``domain``: ``T x size x size x 3`` uint8 RGB."""
    bg = _background(domain, size, seed)
    return np.stack([render_frame(domain, motion, i, size, bg) for i in range(len(motion))])


def tone(seconds: float, seed: int, domain: Domain, rate: int = 22050) -> np.ndarray:
    """A seeded mono tone with a slow tremolo: ``(N,)`` float32 in ``[-0.5, 0.5]``.

    Domain A sounds lower (180-300 Hz) than domain B (400-700 Hz).
    """
    rng = np.random.default_rng([seed, 15485863])
    freq = rng.uniform(180, 300) if domain == "A" else rng.uniform(400, 700)
    t = np.arange(int(round(seconds * rate)), dtype=np.float64) / rate
    env = 0.35 + 0.15 * np.sin(2 * math.pi * rng.uniform(0.5, 2.0) * t)
    return (env * np.sin(2 * math.pi * freq * t)).astype(np.float32)


def write_video(
    path: str | Path, frames: np.ndarray, fps: float = 25.0, audio: np.ndarray | None = None, rate: int = 22050
) -> Path:
    """Encode frames (H.264, yuv420p) and an optional mono AAC track, atomically.

    Args:
        path: output file (.mp4/.mkv/.mov); replaced if it exists.
        frames: ``T x H x W x 3`` uint8 RGB with even ``H`` and ``W``.
        fps: frame rate (frames/s).
        audio: ``(N,)`` float32 samples in ``[-1, 1]`` at ``rate`` Hz, or None for no audio.
        rate: audio sample rate (Hz).

    Returns:
        The written path.
    """
    import av

    path = Path(path)
    _, h, w, _ = frames.shape
    with atomic_file(path) as tmp:
        with av.open(str(tmp), "w") as out:
            vs = out.add_stream("libx264", rate=Fraction(fps).limit_denominator(1001))
            vs.width, vs.height, vs.pix_fmt = w, h, "yuv420p"
            vs.options = {"crf": "12", "preset": "veryfast"}
            aus = out.add_stream("aac", rate=rate, layout="mono") if audio is not None else None
            for img in frames:
                for packet in vs.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(img), format="rgb24")):
                    out.mux(packet)
            for packet in vs.encode():
                out.mux(packet)
            if aus is not None:
                chunk = 1024
                for start in range(0, len(audio), chunk):
                    samples = np.ascontiguousarray(audio[None, start : start + chunk], dtype=np.float32)
                    frame = av.AudioFrame.from_ndarray(samples, format="fltp", layout="mono")
                    frame.sample_rate = rate
                    frame.pts = start
                    for packet in aus.encode(frame):
                        out.mux(packet)
                for packet in aus.encode():
                    out.mux(packet)
    return path


@dataclass(frozen=True)
class SynthClip:
    """One written clip: its file, domain, seed and the motion it was rendered from."""

    path: Path
    domain: Domain
    seed: int
    motion: Motion


def clip_seed(seed: int, domain: Domain, index: int) -> int:
    """The seed of clip ``index`` of ``domain`` (held-out clips use negative indices)."""
    return int(np.random.default_rng([seed, 0 if domain == "A" else 1, index + 1000]).integers(0, 2**31 - 1))


def make_domain(
    out_dir: str | Path,
    domain: Domain,
    *,
    seed: int = 0,
    clips: int = 3,
    frames: int = 48,
    size: int = 64,
    fps: float = 25.0,
    first: int = 0,
    prefix: str | None = None,
) -> list[SynthClip]:
    """Write ``clips`` videos of one domain into ``out_dir`` (created if needed).

    Args:
        out_dir: folder for the clips, named ``<prefix>_<i>.mp4`` (prefix default: domain).
        domain: "A" or "B".
        seed: master seed; clip ``i`` uses :func:`clip_seed` ``(seed, domain, i)`` for
            its motion, texture and tone, so clips differ but reproduce exactly.
        clips: number of clips (>= 1); frames: frames per clip; size: side (even, >= 16).
        fps: frame rate; first: index of the first clip (to make held-out clips).

    Returns:
        The written clips, in order.
    """
    if size < 16 or size % 2:
        raise ValueError(f"synthetic frame size must be even and >= 16, got {size}")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for i in range(first, first + clips):
        s = clip_seed(seed, domain, i)
        motion = make_motion(frames, s)
        video = render_clip(domain, motion, size, seed=s)
        audio = tone(frames / fps, s, domain)
        path = write_video(out_dir / f"{prefix or domain}_{i:02d}.mp4", video, fps=fps, audio=audio)
        written.append(SynthClip(path=path, domain=domain, seed=s, motion=motion))
    return written


# ---------------------------------------------------------------- measurements


def object_centroids(frames: np.ndarray | Sequence[np.ndarray]) -> np.ndarray:
    """Centroid of the shape in each frame, whatever its look: ``(T, 2)`` x, y in ``[0, 1]``.

    The background of either domain is close to the frame's median colour, so the
    shape is where pixels are far from it; Otsu's threshold on that distance picks the
    shape without knowing its colour (it also works on translated frames).

    Args:
        frames: ``T x H x W x 3`` uint8 RGB (any square or rectangular size).
    """
    out = []
    for img in frames:
        img = np.asarray(img, dtype=np.float32)
        h, w = img.shape[:2]
        med = np.median(img.reshape(-1, 3), axis=0)
        dist = np.linalg.norm(img - med, axis=2)
        d8 = np.clip(dist * (255.0 / max(float(dist.max()), 1e-6)), 0, 255).astype(np.uint8)
        _, mask = cv2.threshold(d8, 0, 1, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
        weight = mask.astype(np.float32) * dist
        total = float(weight.sum())
        if total <= 0:
            out.append((0.5, 0.5))
            continue
        ys, xs = np.mgrid[0:h, 0:w]
        out.append((float((weight * xs).sum() / total) / w, float((weight * ys).sum() / total) / h))
    return np.asarray(out, dtype=np.float64)


def track_correlation(a: np.ndarray, b: np.ndarray) -> float:
    """Mean Pearson correlation of the x and of the y coordinates of two ``(T, 2)`` tracks.

    Returns a value in ``[-1, 1]``; 1 means ``b`` follows ``a`` exactly (up to offset
    and scale). A constant coordinate counts as uncorrelated (0).
    """
    vals = []
    for k in range(2):
        x, y = a[:, k] - a[:, k].mean(), b[:, k] - b[:, k].mean()
        den = float(np.sqrt((x * x).sum() * (y * y).sum()))
        vals.append(float((x * y).sum()) / den if den > 1e-12 else 0.0)
    return float(np.mean(vals))


def mean_rgb(frames: np.ndarray | Sequence[np.ndarray]) -> np.ndarray:
    """Mean colour of a set of frames: ``(3,)`` float64 RGB in ``[0, 255]``."""
    total, count = np.zeros(3), 0
    for img in frames:
        total += np.asarray(img, dtype=np.float64).reshape(-1, 3).sum(axis=0)
        count += img.shape[0] * img.shape[1]
    return total / max(count, 1)


def read_frames(path: str | Path, max_frames: int | None = None) -> np.ndarray:
    """Decode a video into ``T x H x W x 3`` uint8 RGB with PyAV (small clips only)."""
    import av

    frames = []
    with av.open(str(path)) as container:
        for frame in container.decode(video=0):
            frames.append(frame.to_ndarray(format="rgb24"))
            if max_frames is not None and len(frames) >= max_frames:
                break
    return np.stack(frames)
