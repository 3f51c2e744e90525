"""The translate stage of render: any picture size through the generator, in batches.

A generator that is fully convolutional still has a shape it needs: the ResNet
generator down-samples twice by 2 and up-samples twice, so its input sides must be
multiples of :data:`MULTIPLE` (4). :class:`FitTranslate` wraps a translate function
(a list of equal-sized ``H x W x 3`` uint8 pictures -> the same, e.g.
:class:`Translator`, the generator on a device) so it takes pictures of any size:

- the picture is reflect-padded to the next multiple of 4, split evenly between the two
  sides, and the translation is cropped back to the same window, so nothing shifts;
- with ``tile``, a picture larger than ``tile`` is translated in overlapping
  ``tile x tile`` windows (at most ``batch`` per call, so memory is bounded by the tile, not
  the frame) and blended back with weights that are zero for the outer :data:`MARGIN`
  of the overlap on an inner edge (where a window lacks its neighbours' context) and rise
  as a raised cosine over the rest, so no seam shows. Windows start at multiples of 4, so
  a network whose receptive field reaches less than the margin gives the untiled result
  (up to rounding). The ResNet generator's instance normalisation sees each tile's own
  statistics, so its tiles can differ a little in tone: keep tiles large (several times
  the training size).

:func:`translate_items` is the stage itself: it fills ``item.result`` for every item of
a batch that has a network input.
"""

from __future__ import annotations

import math
from typing import Callable, Optional, Sequence

import cv2
import numpy as np
import torch

from retarget.device import AMP_DTYPES, resolve_amp

#: Input sides the ResNet generator needs are multiples of this (two stride-2 down-samplings).
MULTIPLE = 4
#: Overlap of neighbouring tiles, as a fraction of the tile side (rounded to a multiple of 4).
OVERLAP = 0.25
#: Part of the overlap, from a window's inner edge, that gets no weight (its context is cut off).
MARGIN = 0.25

TranslateFn = Callable[[Sequence[np.ndarray]], list[np.ndarray]]


def pad_amounts(n: int, multiple: int = MULTIPLE) -> tuple[int, int]:
    """Pixels to add before and after a side of ``n`` px to reach a multiple of ``multiple``."""
    total = (-n) % multiple
    return total // 2, total - total // 2


def pad_reflect(image: np.ndarray, multiple: int = MULTIPLE) -> tuple[np.ndarray, tuple[int, int]]:
    """Reflect-pad ``image`` (H x W x C) so both sides are multiples of ``multiple``.

    Returns:
        (the padded image, ``(top, left)`` offset of the original in it).
    """
    h, w = image.shape[:2]
    (top, bottom), (left, right) = pad_amounts(h, multiple), pad_amounts(w, multiple)
    if not (top or bottom or left or right):
        return image, (0, 0)
    if min(h, w) < 2:  # reflection needs two pixels; repeat the one there is
        return cv2.copyMakeBorder(image, top, bottom, left, right, cv2.BORDER_REPLICATE), (top, left)
    return cv2.copyMakeBorder(image, top, bottom, left, right, cv2.BORDER_REFLECT_101), (top, left)


def tile_starts(n: int, tile: int, overlap: int) -> list[int]:
    """Start positions of ``tile``-px windows covering ``n`` px with at least ``overlap`` px shared."""
    if n <= tile:
        return [0]
    starts = list(range(0, n - tile, tile - overlap))
    return starts + [n - tile]


def edge_weights(length: int, start_inner: bool, end_inner: bool, overlap: int) -> np.ndarray:
    """1-D blending weights of a window: 1 inside, 0 then a raised cosine over an inner edge's overlap.

    Args:
        length: window side (px).
        start_inner, end_inner: whether that edge has a neighbour (an edge of the picture
            keeps weight 1 up to the border).
        overlap: px the neighbours share.

    Returns:
        ``(length,)`` float32 in [0, 1].
    """
    w = np.ones(length, np.float32)
    margin = int(round(overlap * MARGIN))
    ramp_len = max(1, overlap - margin)
    t = (np.arange(ramp_len, dtype=np.float32) + 0.5) / ramp_len
    ramp = np.concatenate([np.zeros(margin, np.float32), 0.5 - 0.5 * np.cos(np.pi * t)])[: min(overlap, length)]
    if start_inner:
        w[: len(ramp)] = np.minimum(w[: len(ramp)], ramp)
    if end_inner:
        w[length - len(ramp) :] = np.minimum(w[length - len(ramp) :], ramp[::-1])
    return w


class FitTranslate:
    """A translate function made to take pictures of any size (see the module).

    Args:
        translate: list of ``h x w x 3`` uint8 RGB (equal sizes, multiples of 4) -> the same.
        tile: translate pictures larger than this in overlapping windows of this side (px,
            rounded down to a multiple of 4, at least 16); None = whole pictures.
        batch: at most this many tiles per call of ``translate``.
    """

    def __init__(self, translate: TranslateFn, tile: Optional[int] = None, batch: int = 8) -> None:
        self.translate = translate
        self.batch = max(1, int(batch))
        self.tile = None if not tile else max(16, int(tile) // MULTIPLE * MULTIPLE)
        overlap = math.floor((self.tile or 0) * OVERLAP / MULTIPLE) * MULTIPLE
        self.overlap = max(MULTIPLE, overlap)

    def __call__(self, images: Sequence[np.ndarray]) -> list[np.ndarray]:
        """Translate ``images`` (each ``H x W x 3`` uint8, any size); returns the same count and sizes."""
        groups: dict[tuple[int, ...], list[int]] = {}
        for i, image in enumerate(images):
            groups.setdefault(image.shape, []).append(i)
        results: dict[int, np.ndarray] = {}
        for idx in groups.values():
            for i, res in zip(idx, self._same_size([images[i] for i in idx])):
                results[i] = res
        return [results[i] for i in range(len(images))]

    def _same_size(self, images: list[np.ndarray]) -> list[np.ndarray]:
        h, w = images[0].shape[:2]
        padded = [pad_reflect(im)[0] for im in images]
        top, left = pad_amounts(h)[0], pad_amounts(w)[0]
        ph, pw = padded[0].shape[:2]
        if self.tile is None or (ph <= self.tile and pw <= self.tile):
            done = self._chunked(padded)
        else:
            done = self._tiled(padded)
        return [np.ascontiguousarray(r[top : top + h, left : left + w]) for r in done]

    def _chunked(self, pictures: list[np.ndarray]) -> list[np.ndarray]:
        done: list[np.ndarray] = []
        for k in range(0, len(pictures), self.batch):
            done.extend(self.translate(pictures[k : k + self.batch]))
        return done

    def _tiled(self, pictures: list[np.ndarray]) -> list[np.ndarray]:
        ph, pw = pictures[0].shape[:2]
        assert self.tile is not None
        th, tw = min(self.tile, ph), min(self.tile, pw)
        ys, xs = tile_starts(ph, th, self.overlap), tile_starts(pw, tw, self.overlap)
        boxes = [(y, x) for y in ys for x in xs]
        weights = [
            np.outer(
                edge_weights(th, y > 0, y + th < ph, self.overlap), edge_weights(tw, x > 0, x + tw < pw, self.overlap)
            )[..., None]
            for y, x in boxes
        ]
        results = []
        for picture in pictures:
            tiles = self._chunked([picture[y : y + th, x : x + tw] for y, x in boxes])
            acc = np.zeros((ph, pw, 3), np.float32)
            total = np.zeros((ph, pw, 1), np.float32)
            for (y, x), weight, res in zip(boxes, weights, tiles):
                acc[y : y + th, x : x + tw] += weight * res
                total[y : y + th, x : x + tw] += weight
            results.append(np.clip(acc / np.maximum(total, 1e-6) + 0.5, 0, 255).astype(np.uint8))
        return results


def translate_items(batch: list, translate: TranslateFn) -> list:
    """The translate stage: set ``item.result`` for every item of ``batch`` with a ``net_input``.

    Items without one (face mode, no face found) pass unchanged. Returns ``batch``.
    """
    todo = [it for it in batch if it.net_input is not None]
    if todo:
        for it, res in zip(todo, translate([it.net_input for it in todo])):
            it.result = res
    return batch


class Translator:
    """Apply a generator to batches of uint8 crops.

    Args:
        net: maps float ``[B, 3, S, S]`` in [-1, 1] to the same shape and range.
        device: where ``net`` lives.
        amp: ``"auto"``, ``"bf16"``, ``"fp16"`` or ``"off"``: autocast on CUDA and CPU
            (:func:`retarget.device.resolve_amp`); ``self.amp`` is the resolved value.
        channels_last: memory format of ``net`` and its inputs; None = on for CUDA only
            (on CPU it measured slower). On CUDA cuDNN also picks its fastest kernels
            once (``cudnn.benchmark``: the batches have one size, the last one aside).
    """

    def __init__(
        self,
        net: torch.nn.Module,
        device: torch.device | str = "cpu",
        amp: str = "off",
        channels_last: Optional[bool] = None,
    ) -> None:
        self.net = net
        self.device = torch.device(device)
        width = next((m.out_channels for m in net.modules() if isinstance(m, torch.nn.Conv2d)), None)
        self.amp = resolve_amp(amp, self.device, width)  # a narrow generator stays float32 on a CPU
        self.amp_dtype = AMP_DTYPES.get(self.amp)
        cuda = self.device.type == "cuda"
        on = cuda if channels_last is None else channels_last
        self.memory_format = torch.channels_last if on else torch.contiguous_format
        if on:
            self.net = self.net.to(memory_format=self.memory_format)
        if cuda:
            torch.backends.cudnn.benchmark = True

    @torch.inference_mode()
    def __call__(self, crops: Sequence[np.ndarray]) -> list[np.ndarray]:
        """Translate ``crops`` (each S x S x 3 uint8 RGB); returns the same count and shape."""
        if not crops:
            return []
        x = torch.from_numpy(np.stack(crops)).to(self.device, non_blocking=True)
        x = x.permute(0, 3, 1, 2).float().div_(127.5).sub_(1.0)
        x = x.contiguous(memory_format=self.memory_format)  # the permute alone leaves a channels_last view
        if self.amp_dtype is not None:
            with torch.autocast(self.device.type, dtype=self.amp_dtype):
                y = self.net(x)
        else:
            y = self.net(x)
        y = y.float().add_(1.0).mul_(127.5).clamp_(0, 255).round_().to(torch.uint8)
        out = y.permute(0, 2, 3, 1).contiguous().cpu().numpy()
        return list(out)
