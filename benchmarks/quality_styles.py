"""Deterministic, temporally stable stylisations: the ground truth of benchmarks/quality.py.

Each style is a pure function of one frame (``H x W x 3`` uint8 RGB in, the same out),
built from OpenCV operations only: no randomness, no state, no neighbouring frames.
A video stylised frame by frame therefore changes only where the video changes, and
the stylisation of a clip is an exact target for a translation model.

The styles differ in kind on purpose (tone curve and palette, flat colour regions
with outlines, a two-colour gradient map), so a method that wins on one look only
shows up as a spread between styles.
"""

from __future__ import annotations

from collections.abc import Callable

import cv2
import numpy as np

Style = Callable[[np.ndarray], np.ndarray]


def _smooth(img: np.ndarray, passes: int = 2) -> np.ndarray:
    """Edge-preserving smoothing (bilateral filter), scaled to the frame size."""
    d = max(3, round(min(img.shape[:2]) / 16) | 1)
    out = img
    for _ in range(passes):
        out = cv2.bilateralFilter(out, d, 45, d)
    return out


def painterly(img: np.ndarray) -> np.ndarray:
    """Soft, warm oil-paint look: smoothing, richer saturation, a warm tone curve, 8 levels."""
    out = _smooth(img)
    hsv = cv2.cvtColor(out, cv2.COLOR_RGB2HSV).astype(np.float32)
    hsv[..., 1] = np.clip(hsv[..., 1] * 1.45 + 10, 0, 255)
    out = cv2.cvtColor(hsv.astype(np.uint8), cv2.COLOR_HSV2RGB)
    x = np.arange(256, dtype=np.float32) / 255.0
    curves = [np.clip(255 * (x**0.8) * 1.05, 0, 255), 255 * x**0.95, 255 * (x**1.25) * 0.85]
    levels = 8
    luts = [np.round(np.round(c / 255 * (levels - 1)) * 255 / (levels - 1)).astype(np.uint8) for c in curves]
    return np.stack([cv2.LUT(out[..., i], luts[i]) for i in range(3)], axis=-1)


def cartoon(img: np.ndarray) -> np.ndarray:
    """Flat colour regions with dark outlines: smoothing, lightness in 5 bands, vivid hues, edges."""
    out = _smooth(img, passes=3)
    lab = cv2.cvtColor(out, cv2.COLOR_RGB2LAB).astype(np.float32)
    bands = 5
    lab[..., 0] = (np.floor(lab[..., 0] / 256 * bands) + 0.5) * 256 / bands
    lab[..., 1:] = np.clip((lab[..., 1:] - 128) * 1.6 + 128, 0, 255)
    out = cv2.cvtColor(np.clip(lab, 0, 255).astype(np.uint8), cv2.COLOR_LAB2RGB)
    gray = cv2.cvtColor(cv2.GaussianBlur(img, (3, 3), 0), cv2.COLOR_RGB2GRAY)
    gx = cv2.Sobel(gray, cv2.CV_32F, 1, 0, ksize=3)
    gy = cv2.Sobel(gray, cv2.CV_32F, 0, 1, ksize=3)
    edge = np.clip((np.hypot(gx, gy) - 60) / 120, 0, 1)[..., None]  # soft outline strength 0..1
    return np.round(out * (1 - 0.85 * edge)).astype(np.uint8)


def duotone(img: np.ndarray) -> np.ndarray:
    """A print look: lightness mapped onto a navy-to-amber gradient after a slight blur."""
    gray = cv2.cvtColor(cv2.GaussianBlur(img, (3, 3), 0), cv2.COLOR_RGB2GRAY).astype(np.float32) / 255
    t = np.clip((gray - 0.08) / 0.84, 0, 1)
    t = t * t * (3 - 2 * t)  # smoothstep contrast
    dark = np.array([24, 32, 92], np.float32)
    light = np.array([250, 205, 120], np.float32)
    return np.round(dark + t[..., None] * (light - dark)).astype(np.uint8)


STYLES: dict[str, Style] = {"painterly": painterly, "cartoon": cartoon, "duotone": duotone}


def stylise(img: np.ndarray, style: str) -> np.ndarray:
    """``img`` (H x W x 3 uint8 RGB) in the named style (a key of :data:`STYLES`)."""
    if style not in STYLES:
        raise ValueError(f"unknown style {style!r}; choose one of {', '.join(STYLES)}")
    return STYLES[style](img)
