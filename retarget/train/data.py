"""Training data: a uint8 frame cache with the source motion, loaded once per domain.

Frames are decoded once, resized so their short side is ``load_size`` (each image keeps
its own aspect) and kept as uint8 arrays, one per frame shape (a :class:`Shard`: a
dataset may mix videos of several aspects), in RAM or in memory-mapped ``.npy`` files in
the run folder, so a step only slices memory: loading never starves the model. With
``motion=True`` the optical flow between consecutive frames of every segment is computed
once here too (:mod:`retarget.train.motion`), for the warp term.

Sampling (:mod:`retarget.train.sampler`) draws windows from these arrays.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator, Optional, Sequence

import cv2
import numpy as np

from retarget.dataset.manifest import Dataset, read_dataset
from retarget.errors import RetargetError
from retarget.run.info import DataInfo
from retarget.train.cache import MappedCache, in_memory, shapes_of
from retarget.train.motion import compute_motion, pairs_of


@dataclass
class Shard:
    """The frames of a domain that share one shape, and their motion.

    Attributes:
        frames: ``N x H x W x 3`` uint8 RGB, ``min(H, W) = load_size`` (ndarray or memmap).
        flow: ``N x H x W x 2`` float16 backward flow of each frame onto the previous one
            (:mod:`retarget.train.motion`), or None when not computed.
        valid: ``N x H x W`` uint8 (0/1) reliability of ``flow``, or None.
    """

    frames: np.ndarray
    flow: Optional[np.ndarray] = None
    valid: Optional[np.ndarray] = None


@dataclass
class DomainData:
    """One domain's frames, decoded and resized once.

    Frames are numbered across shards (shard 0's first, then shard 1's...); a segment
    never spans two shards.

    Attributes:
        name: short name of the dataset (its folder name).
        path: the dataset folder.
        shards: the frames grouped by shape, in the order their first frame appears.
        segments: frame numbers of each temporally continuous segment, in order.
        info: what render needs to know of this dataset (:class:`~retarget.run.info.DataInfo`).
        skipped: images that could not be read (left out; their segment is split there).
        resized: images whose size differed from the dataset's most common size.
        unreadable: the skipped images' paths, relative to ``path``.
    """

    name: str
    path: str
    shards: list[Shard]
    segments: list[np.ndarray]
    info: DataInfo = field(default_factory=DataInfo)
    skipped: int = 0
    resized: int = 0
    unreadable: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        self.offsets = np.cumsum([0] + [len(s.frames) for s in self.shards])

    def __len__(self) -> int:
        return int(self.offsets[-1])

    @property
    def whole_frames(self) -> bool:
        """Whole frames that are not square (``extract --frame full`` of a landscape or portrait
        video, a plain folder of such images): training sees windows of a larger picture."""
        return self.info.frame == "full" and any(s.frames.shape[1] != s.frames.shape[2] for s in self.shards)

    @property
    def frames(self) -> np.ndarray:
        """``N x H x W x 3`` uint8: all frames, for a domain of one shape (most are)."""
        if len(self.shards) != 1:
            shapes = ", ".join(f"{s.frames.shape[2]}x{s.frames.shape[1]}" for s in self.shards)
            raise ValueError(f"{self.path}: frames of several shapes ({shapes}); use clip()")
        return self.shards[0].frames

    @property
    def has_motion(self) -> bool:
        """Whether the source motion was computed (``load_domain(..., motion=True)``)."""
        return all(s.flow is not None for s in self.shards)

    @property
    def min_side(self) -> int:
        """The shortest frame side over all shards (px): the largest window that fits everywhere."""
        return min(min(s.frames.shape[1:3]) for s in self.shards)

    def locate(self, index: int) -> tuple[Shard, int]:
        """The shard holding frame ``index`` and the frame's row in it."""
        k = int(np.searchsorted(self.offsets, index, side="right")) - 1
        return self.shards[k], int(index - self.offsets[k])

    def shape_of(self, index: int) -> tuple[int, int]:
        """``(H, W)`` of frame ``index``."""
        shard, _ = self.locate(index)
        return shard.frames.shape[1], shard.frames.shape[2]

    def clip(self, start: int, count: int) -> np.ndarray:
        """Frames ``start .. start + count - 1`` (one segment): ``count x H x W x 3`` uint8, a view."""
        shard, row = self.locate(start)
        return shard.frames[row : row + count]

    def warning(self, show: int = 3) -> Optional[str]:
        """One line about skipped and resized images, naming the first ``show`` unreadable
        files; None when there is nothing to say."""
        parts = []
        if self.skipped:
            names = ", ".join(self.unreadable[:show])
            more = f" and {len(self.unreadable) - show} more" if len(self.unreadable) > show else ""
            parts.append(f"skipped {self.skipped} unreadable image(s)" + (f" ({names}{more})" if names else ""))
        if self.resized:
            parts.append(f"{self.resized} image(s) of another size than most")
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


def load_shape(height: int, width: int, load_size: int) -> tuple[int, int]:
    """``(H, W)`` of a ``height x width`` image scaled so its short side is ``load_size``."""
    s = load_size / min(height, width)
    return max(load_size, int(round(height * s))), max(load_size, int(round(width * s)))


def _read(path: Path, load_size: int) -> Optional[tuple[np.ndarray, tuple[int, int]]]:
    """The image at ``path`` resized for the cache (RGB), and its own size; None if unreadable.

    Each worker resizes at once, so full-size images never pile up in memory.
    """
    data = np.fromfile(str(path), dtype=np.uint8) if path.is_file() else None
    if data is None or data.size == 0:
        return None
    img = cv2.imdecode(data, cv2.IMREAD_COLOR)
    if img is None:
        return None
    own = img.shape[:2]
    hw = load_shape(own[0], own[1], load_size)
    if hw != own:
        shrink = own[0] > hw[0] or own[1] > hw[1]
        img = cv2.resize(img, (hw[1], hw[0]), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)
    return cv2.cvtColor(img, cv2.COLOR_BGR2RGB), own


def _cache_key(files: Sequence[Path], load_size: int, motion: bool) -> str:
    h = hashlib.sha1(f"{load_size}|{int(motion)}|2".encode())
    for f in files:
        st = f.stat() if f.exists() else None
        # the path's own bytes: a name that is not UTF-8 (surrogate escapes) hashes too
        h.update(os.fsencode(f) + f"|{st.st_size if st else -1}|{st.st_mtime_ns if st else -1}\n".encode())
    return h.hexdigest()


@dataclass
class _Decoded:
    """Images grouped into shards and segments, before they are stored."""

    shapes: list[tuple[int, int]]  # (H, W) of each shard
    rows: list[list[np.ndarray]]  # the images of each shard, in order
    segments: list[list[int]]  # frame numbers across shards (shard 0's first)
    skipped: int
    resized: int
    unreadable: tuple[str, ...]


def _decode(folder: Path, files: list[Path], seg_ids: list[int], load_size: int, workers: int) -> _Decoded:
    """Read and resize every image; group them by shape; split segments at holes and shape changes."""
    with _opencv_silent(), ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        read = list(pool.map(lambda f: _read(f, load_size), files))
    own = [r[1] for r in read if r is not None]
    if not own:
        raise RetargetError(f"{folder}: none of its {len(files)} images could be read")
    common = max(set(own), key=own.count)
    unreadable = tuple(_relative(f, folder) for f, r in zip(files, read) if r is None)
    shapes: list[tuple[int, int]] = []
    rows: list[list[np.ndarray]] = []
    pieces: list[list[tuple[int, int]]] = []  # (shard, row) of each frame, per segment piece
    prev = None
    for i, (r, sid) in enumerate(zip(read, seg_ids)):
        if r is None:
            prev = None  # an unreadable frame breaks temporal continuity
            continue
        hw = r[0].shape[:2]
        if hw not in shapes:
            shapes.append(hw)
            rows.append([])
        k = shapes.index(hw)
        if (sid, k) != prev:  # a new segment, or another shape: another video
            pieces.append([])
            prev = (sid, k)
        pieces[-1].append((k, len(rows[k])))
        rows[k].append(r[0])
        read[i] = None  # the image lives on in rows only
    offsets = np.cumsum([0] + [len(r) for r in rows])
    segments = [[int(offsets[k] + row) for k, row in piece] for piece in pieces]
    resized = sum(1 for s in own if s != common)
    return _Decoded(shapes, rows, segments, len(unreadable), resized, unreadable)


def _relative(path: Path, folder: Path) -> str:
    try:
        return str(path.relative_to(folder))
    except ValueError:  # a manifest may point outside its folder
        return str(path)


def _usable(folder: Path, segments: list[list[int]], frames_needed: int) -> list[list[int]]:
    usable = [s for s in segments if len(s) >= frames_needed]
    if not usable:
        longest = max(len(s) for s in segments)
        raise RetargetError(
            f"{folder}: needs at least {frames_needed} consecutive frames in one segment, the longest has {longest}"
        )
    return usable


def _local_segments(segments: Sequence[Sequence[int]], offsets: np.ndarray) -> list[list[list[int]]]:
    """Each shard's segments in its own row numbers."""
    out: list[list[list[int]]] = [[] for _ in range(len(offsets) - 1)]
    for seg in segments:
        k = int(np.searchsorted(offsets, seg[0], side="right")) - 1
        out[k].append([int(i - offsets[k]) for i in seg])
    return out


# Longer than 60 lines on purpose: cache hit, decode, storage of frames and motion share the file list and shapes.
def load_domain(
    path: str | os.PathLike[str],
    load_size: int,
    *,
    frames_needed: int = 3,
    cache: str = "memory",
    cache_path: Optional[str | os.PathLike[str]] = None,
    workers: int = 2,
    motion: bool = False,
) -> DomainData:
    """Decode a dataset folder once into a uint8 cache at ``load_size``.

    Args:
        path: dataset folder (``retarget extract`` output or a folder of ordered images,
            taken as one segment).
        load_size: short side (px) frames are resized to before random windows; each
            image keeps its own aspect; images of one shape share a :class:`Shard`.
        frames_needed: consecutive frames one sample needs (3 for Recycle-GAN, 1 for CycleGAN).
        cache: ``"memory"`` keeps frames in RAM; ``"mmap"`` writes them once to
            ``cache_path`` (a ``.npy``, with ``.flow.npy``/``.valid.npy`` beside it for the
            motion) and maps them, reusing them while the files are unchanged.
        cache_path: the ``.npy`` file for ``cache="mmap"``.
        workers: decoding (and flow) threads (OpenCV releases the GIL).
        motion: also compute the source motion of every consecutive pair
            (:mod:`retarget.train.motion`), for the warp term.

    Returns:
        :class:`DomainData`; every shard's frames are ``N x H x W x 3`` uint8 RGB with
        ``min(H, W) = load_size``.

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
    kinds = ["frames", "flow", "valid"] if motion else ["frames"]
    mapped = MappedCache(Path(cache_path)) if (cache == "mmap" and cache_path is not None) else None
    key = _cache_key(files, load_size, motion)
    meta = mapped.read_meta(key) if mapped is not None else None
    if meta is not None and mapped is not None:
        counts, hws = meta["counts"], meta["shapes"]
        arrays = {k: mapped.load(k, shapes_of(k, counts, hws)) for k in kinds}
        segments = meta["segments"]
        skipped, resized, unreadable = meta.get("skipped", 0), meta.get("resized", 0), meta.get("unreadable", ())
    else:
        dec = _decode(folder, files, seg_ids, load_size, workers)
        segments = _usable(folder, dec.segments, frames_needed)
        counts, hws = [len(r) for r in dec.rows], [list(s) for s in dec.shapes]
        shapes = shapes_of("frames", counts, hws)
        with mapped.build("frames", shapes) if mapped is not None else in_memory("frames", shapes) as views:
            for view, rows in zip(views, dec.rows):
                for j, img in enumerate(rows):
                    view[j] = img
                rows.clear()
        arrays = {"frames": views}
        if motion:
            arrays["flow"], arrays["valid"] = _motion_arrays(mapped, arrays["frames"], segments, counts, hws, workers)
        if mapped is not None:
            mapped.write_meta(
                {
                    "key": key,
                    "kinds": kinds,
                    "counts": counts,
                    "shapes": hws,
                    "segments": segments,
                    "skipped": dec.skipped,
                    "resized": dec.resized,
                    "unreadable": list(dec.unreadable),
                }
            )
            arrays = {k: mapped.load(k, shapes_of(k, counts, hws)) for k in kinds}
        skipped, resized, unreadable = dec.skipped, dec.resized, dec.unreadable
    shards = [
        Shard(f, arrays["flow"][i] if motion else None, arrays["valid"][i] if motion else None)
        for i, f in enumerate(arrays["frames"])
    ]
    info = DataInfo.of_dataset(ds, sum(counts), scale=load_size)
    segs = [np.asarray(s, dtype=np.int64) for s in segments]
    return DomainData(folder.name, str(folder), shards, segs, info, skipped, resized, tuple(unreadable))


def _motion_arrays(
    mapped: Optional[MappedCache],
    frames: list[np.ndarray],
    segments: list[list[int]],
    counts: list[int],
    hws: list[list[int]],
    workers: int,
) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Flow and validity of every shard, computed from its frames (written to the mapped cache if any)."""
    offsets = np.cumsum([0] + counts)
    local = _local_segments(segments, offsets)
    flow_shapes, valid_shapes = shapes_of("flow", counts, hws), shapes_of("valid", counts, hws)
    build = mapped.build if mapped is not None else in_memory
    with build("flow", flow_shapes) as flows, build("valid", valid_shapes) as valids:
        for k, shard in enumerate(frames):
            compute_motion(shard, pairs_of(local[k]), flows[k], valids[k], workers=workers)
        return list(flows), list(valids)


def default_load_size(size: int, load_size: Optional[int] = None) -> int:
    """The short side frames are resized to before cropping: ``load_size`` or ``round(size * 1.12)``."""
    return int(load_size) if load_size else int(round(size * 1.12))
