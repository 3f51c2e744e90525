"""Training data: a uint8 frame cache, a triplet sampler inside segments, augmentation.

Frames are decoded once, resized so their short side is ``load_size`` and kept as one
``N x H x W x 3`` uint8 array (in RAM, or a memory-mapped ``.npy`` in the run folder), so a step only
slices memory: loading never starves the model.

Sampling is a pure function of ``(seed, rank, domain, step)``: every step draws from
its own freshly seeded generator. A resumed run therefore needs nothing but the step
number to continue the exact sequence of samples, crops and flips, and ranks of a
distributed run draw different samples from disjoint shares of the data.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator, Optional, Sequence

import cv2
import numpy as np
import torch

from retarget.atomic import atomic_file
from retarget.dataset.manifest import Dataset, read_dataset
from retarget.errors import RetargetError
from retarget.run.info import DataInfo


@dataclass
class DomainData:
    """One domain's frames, decoded and resized once.

    Attributes:
        name: short name of the dataset (its folder name).
        path: the dataset folder.
        frames: ``N x H x W x 3`` uint8 RGB, ``min(H, W) = load_size`` (ndarray or memmap);
            square for ``retarget extract`` datasets.
        segments: frame indices of each temporally continuous segment, in order.
        info: what render needs to know of this dataset (:class:`~retarget.run.info.DataInfo`).
        skipped: images that could not be read (left out; their segment is split there).
        resized: images whose size differed from the dataset's most common size.
        unreadable: the skipped images' paths, relative to ``path``.
    """

    name: str
    path: str
    frames: np.ndarray
    segments: list[np.ndarray]
    info: DataInfo = field(default_factory=DataInfo)
    skipped: int = 0
    resized: int = 0
    unreadable: tuple[str, ...] = ()

    def warning(self, show: int = 3) -> Optional[str]:
        """One line about skipped and resized images, naming the first ``show`` unreadable
        files; None when there is nothing to say."""
        parts = []
        if self.skipped:
            names = ", ".join(self.unreadable[:show])
            more = f" and {len(self.unreadable) - show} more" if len(self.unreadable) > show else ""
            parts.append(f"skipped {self.skipped} unreadable image(s)" + (f" ({names}{more})" if names else ""))
        if self.resized:
            parts.append(f"resized {self.resized} image(s) of another size")
        return f"{self.path}: {', '.join(parts)}" if parts else None


def _list_dataset(path: Path) -> tuple[list[Path], list[int], Dataset]:
    """Files in time order, their segment ids and the dataset of a folder."""
    ds = read_dataset(path)
    files: list[Path] = []
    seg: list[int] = []
    for sid, idx in enumerate(ds.segments()):
        files += [ds.path(i) for i in idx]
        seg += [sid] * len(idx)
    return files, seg, ds


@contextlib.contextmanager
def _opencv_silent() -> Iterator[None]:
    """Silence OpenCV's own log inside the block: it prints "[ WARN:0@...] ... PNG input
    buffer is incomplete" and the like for each broken image, without naming the file;
    load_domain names them itself (:meth:`DomainData.warning`)."""
    try:
        from cv2.utils import logging as cv_log

        old = cv_log.getLogLevel()
        cv_log.setLogLevel(cv_log.LOG_LEVEL_SILENT)
    except (ImportError, AttributeError):  # an OpenCV build without the logging module
        yield
        return
    try:
        yield
    finally:
        cv_log.setLogLevel(old)


def _read_rgb(path: Path) -> Optional[np.ndarray]:
    data = np.fromfile(str(path), dtype=np.uint8) if path.is_file() else None
    if data is None or data.size == 0:
        return None
    img = cv2.imdecode(data, cv2.IMREAD_COLOR)
    if img is None:
        return None
    return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)


def _fit(img: np.ndarray, hw: tuple[int, int]) -> np.ndarray:
    if img.shape[:2] == hw:
        return img
    shrink = img.shape[0] > hw[0] or img.shape[1] > hw[1]
    return cv2.resize(img, (hw[1], hw[0]), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)


def _cache_key(files: Sequence[Path], load_size: int) -> str:
    h = hashlib.sha1(str(load_size).encode())
    for f in files:
        st = f.stat() if f.exists() else None
        h.update(f"{f}|{st.st_size if st else -1}|{st.st_mtime_ns if st else -1}\n".encode())
    return h.hexdigest()


# Longer than 60 lines on purpose: cache hit, decode, segment split and cache write share the file list and shapes.
def load_domain(
    path: str | os.PathLike[str],
    load_size: int,
    *,
    frames_needed: int = 3,
    cache: str = "memory",
    cache_path: Optional[str | os.PathLike[str]] = None,
    workers: int = 2,
) -> DomainData:
    """Decode a dataset folder once into a uint8 cache at ``load_size``.

    Args:
        path: dataset folder (``retarget extract`` output or a folder of ordered images,
            taken as one segment).
        load_size: short side (px) frames are resized to before random crops; the
            aspect ratio of the dataset's most common image size is kept (images of
            another size are resized to the same shape).
        frames_needed: consecutive frames one sample needs (3 for Recycle-GAN, 1 for CycleGAN).
        cache: ``"memory"`` keeps frames in RAM; ``"mmap"`` writes them once to
            ``cache_path`` (a ``.npy``) and maps it, reusing it while the files are unchanged.
        cache_path: the ``.npy`` file for ``cache="mmap"``.
        workers: decoding threads (OpenCV releases the GIL).

    Returns:
        :class:`DomainData` with ``frames`` ``N x H x W x 3`` uint8 RGB, ``min(H, W) = load_size``.

    Raises:
        RetargetError: missing or empty folder, no readable image, or no segment with
            ``frames_needed`` consecutive readable frames.
    """
    folder = Path(path)
    if not folder.exists():
        raise RetargetError(f"{folder}: dataset folder not found")
    if not folder.is_dir():
        raise RetargetError(f"{folder}: not a folder (expected a dataset folder of images)")
    files, seg_ids, ds = _list_dataset(folder)
    if not files:
        raise RetargetError(f"{folder}: the dataset has no frames")

    mmap_file = Path(cache_path) if (cache == "mmap" and cache_path is not None) else None
    key = _cache_key(files, load_size)
    meta_file = mmap_file.with_suffix(".json") if mmap_file else None
    if mmap_file and meta_file and mmap_file.exists() and meta_file.exists():
        try:
            meta = json.loads(meta_file.read_text())
        except (OSError, ValueError):
            meta = {}
        if meta.get("key") == key:
            frames = np.load(mmap_file, mmap_mode="r")
            segments = [np.asarray(s, dtype=np.int64) for s in meta["segments"]]
            info = DataInfo.of_dataset(ds, len(frames), scale=load_size)
            return DomainData(
                folder.name,
                str(folder),
                frames,
                segments,
                info,
                meta.get("skipped", 0),
                meta.get("resized", 0),
                tuple(meta.get("unreadable", ())),
            )

    with _opencv_silent(), ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        images = list(pool.map(_read_rgb, files))
    shapes = [im.shape[:2] for im in images if im is not None]
    if not shapes:
        raise RetargetError(f"{folder}: none of its {len(files)} images could be read")
    common = max(set(shapes), key=shapes.count)
    resized = sum(1 for s in shapes if s != common)
    skipped = sum(1 for im in images if im is None)
    unreadable = tuple(_relative(f, folder) for f, im in zip(files, images) if im is None)

    # An unreadable frame breaks temporal continuity, so its segment is split there.
    segments: list[list[int]] = []
    kept: list[int] = []
    prev_seg = None
    for i, (im, sid) in enumerate(zip(images, seg_ids)):
        if im is None:
            prev_seg = None
            continue
        if sid != prev_seg:
            segments.append([])
            prev_seg = sid
        segments[-1].append(len(kept))
        kept.append(i)

    usable = [s for s in segments if len(s) >= frames_needed]
    if not usable:
        longest = max(len(s) for s in segments)
        raise RetargetError(
            f"{folder}: needs at least {frames_needed} consecutive frames in one segment, the longest has {longest}"
        )

    scale = load_size / min(common)
    hw = (max(load_size, int(round(common[0] * scale))), max(load_size, int(round(common[1] * scale))))
    shape = (len(kept), *hw, 3)
    if mmap_file is not None:
        mmap_file.parent.mkdir(parents=True, exist_ok=True)
        with atomic_file(mmap_file) as tmp:
            arr = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.uint8, shape=shape)
            for j, i in enumerate(kept):
                arr[j] = _fit(images[i], hw)  # type: ignore[arg-type]
                images[i] = None
            arr.flush()
            del arr
        with atomic_file(meta_file) as tmp:  # type: ignore[arg-type]
            meta = {"key": key, "segments": usable, "skipped": skipped, "resized": resized, "unreadable": unreadable}
            tmp.write_text(json.dumps(meta))
        frames = np.load(mmap_file, mmap_mode="r")
    else:
        frames = np.empty(shape, dtype=np.uint8)
        for j, i in enumerate(kept):
            frames[j] = _fit(images[i], hw)  # type: ignore[arg-type]
            images[i] = None
    info = DataInfo.of_dataset(ds, len(frames), scale=load_size)
    segs = [np.asarray(s, dtype=np.int64) for s in usable]
    return DomainData(folder.name, str(folder), frames, segs, info, skipped, resized, unreadable)


def _relative(path: Path, folder: Path) -> str:
    try:
        return str(path.relative_to(folder))
    except ValueError:  # a manifest may point outside its folder
        return str(path)


class TripletSampler:
    """Draws batches of ``frames`` consecutive frames from one domain, augmented.

    Every sample starts at an index whose ``frames - 1`` successors lie in the same
    segment. All frames of a sample share one random crop and one flip. Draws depend
    only on ``(seed, rank, domain, step)``, so resuming at a step repeats them exactly.

    Args:
        data: the domain's cached frames.
        frames: T, frames per sample (3 Recycle-GAN, 1 CycleGAN).
        size: crop side (px), at most the frames' short side.
        batch_size: samples per batch.
        seed: run seed.
        domain: 0 for A, 1 for B (different streams for the two domains).
        flip: random horizontal flips.
        rank, world: this process's share of the start indices in a distributed run.
    """

    def __init__(
        self,
        data: DomainData,
        frames: int,
        size: int,
        batch_size: int,
        seed: int,
        domain: int = 0,
        flip: bool = True,
        rank: int = 0,
        world: int = 1,
    ) -> None:
        self.data, self.frames, self.size, self.batch_size = data, frames, size, batch_size
        self.seed, self.domain, self.flip, self.rank = seed, domain, flip, rank
        load = min(data.frames.shape[1:3])
        if size > load:
            raise RetargetError(f"{data.path}: crop size {size} is larger than the load size {load}")
        starts = np.concatenate([s[: len(s) - frames + 1] for s in data.segments if len(s) >= frames])
        # Disjoint shares per rank when there is enough data; tiny sets are shared.
        share = starts[rank::world] if world > 1 and len(starts) >= world else starts
        self.starts = share

    def __len__(self) -> int:
        return len(self.starts)

    def sample(self, step: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """The draws for ``step``: start indices, crop y, crop x, flips (each ``[batch]``)."""
        rng = np.random.default_rng([self.seed, self.rank, self.domain, step])
        starts = self.starts[rng.integers(0, len(self.starts), self.batch_size)]
        room_y, room_x = self.data.frames.shape[1] - self.size, self.data.frames.shape[2] - self.size
        ys = rng.integers(0, room_y + 1, self.batch_size)
        xs = rng.integers(0, room_x + 1, self.batch_size)
        flips = rng.random(self.batch_size) < 0.5 if self.flip else np.zeros(self.batch_size, bool)
        return starts, ys, xs, flips

    def batch(self, step: int) -> torch.Tensor:
        """The batch of ``step``: float32 ``[batch, frames, 3, size, size]`` in [-1, 1]."""
        starts, ys, xs, flips = self.sample(step)
        out = np.empty((self.batch_size, self.frames, self.size, self.size, 3), dtype=np.uint8)
        for b in range(self.batch_size):
            clip = self.data.frames[
                starts[b] : starts[b] + self.frames, ys[b] : ys[b] + self.size, xs[b] : xs[b] + self.size
            ]
            out[b] = clip[:, :, ::-1] if flips[b] else clip
        t = torch.from_numpy(out).permute(0, 1, 4, 2, 3).float()
        return t.div_(127.5).sub_(1.0).contiguous()


def default_load_size(size: int, load_size: Optional[int] = None) -> int:
    """The short side frames are resized to before cropping: ``load_size`` or ``round(size * 1.12)``."""
    return int(load_size) if load_size else int(round(size * 1.12))
