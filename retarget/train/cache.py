"""Where a domain's cached arrays live: fresh in RAM, or memory-mapped ``.npy`` files in the run folder.

The frame cache of :mod:`retarget.train.data` holds three kinds of arrays per shard of
frames of one shape: ``frames`` (``N x H x W x 3`` uint8), and with the warp term's
motion ``flow`` (``N x H x W x 2`` float16) and ``valid`` (``N x H x W`` uint8). In RAM
each shard's array is its own (:func:`in_memory`); memory-mapped, every kind is one flat
``.npy`` whose shard views :func:`shapes_of` lays out (:class:`MappedCache`).
"""

from __future__ import annotations

import contextlib
import json
from pathlib import Path
from typing import Iterator, Optional, Sequence

import numpy as np

from retarget.atomic import atomic_file

#: Trailing dimensions and dtype of each cached array kind (per frame: H x W x ...).
_KINDS: dict[str, tuple[tuple[int, ...], type]] = {
    "frames": ((3,), np.uint8),
    "flow": ((2,), np.float16),
    "valid": ((), np.uint8),
}


def shapes_of(kind: str, counts: Sequence[int], hws: Sequence[Sequence[int]]) -> list[tuple[int, ...]]:
    """The shard shapes of ``kind``: ``counts[k]`` frames of ``hws[k]`` = (H, W) each."""
    return [(int(n), int(hw[0]), int(hw[1]), *_KINDS[kind][0]) for n, hw in zip(counts, hws)]


def _views(flat: np.ndarray, shapes: Sequence[tuple[int, ...]]) -> list[np.ndarray]:
    """Consecutive arrays of ``shapes`` over one flat buffer."""
    out, at = [], 0
    for shape in shapes:
        size = int(np.prod(shape))
        out.append(flat[at : at + size].reshape(shape))
        at += size
    return out


class MappedCache:
    """A memory-mapped cache: one flat ``.npy`` per kind (frames, flow, valid) and a JSON of the layout.

    Each file is written under a temporary name and renamed when complete, the JSON
    last, so a cache whose JSON names the current key is whole.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self.meta_file = path.with_suffix(".json")

    def file(self, kind: str) -> Path:
        return self.path if kind == "frames" else self.path.with_suffix(f".{kind}.npy")

    def read_meta(self, key: str) -> Optional[dict]:
        try:
            meta = json.loads(self.meta_file.read_text())
        except (OSError, ValueError):
            return None
        kinds = meta.get("kinds", ["frames"]) if isinstance(meta, dict) else []
        if meta.get("key") != key or not all(self.file(k).exists() for k in kinds):
            return None
        return meta

    def load(self, kind: str, shapes: Sequence[tuple[int, ...]]) -> list[np.ndarray]:
        return _views(np.load(self.file(kind), mmap_mode="r"), shapes)

    @contextlib.contextmanager
    def build(self, kind: str, shapes: Sequence[tuple[int, ...]]) -> Iterator[list[np.ndarray]]:
        """Writable zeroed views of a new file of ``kind``; renamed into place when the block ends cleanly."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        total = sum(int(np.prod(s)) for s in shapes)
        with atomic_file(self.file(kind)) as tmp:
            flat = np.lib.format.open_memmap(tmp, mode="w+", dtype=_KINDS[kind][1], shape=(total,))
            yield _views(flat, shapes)
            flat.flush()
            del flat

    def write_meta(self, meta: dict) -> None:
        with atomic_file(self.meta_file) as tmp:
            tmp.write_text(json.dumps(meta))


@contextlib.contextmanager
def in_memory(kind: str, shapes: Sequence[tuple[int, ...]]) -> Iterator[list[np.ndarray]]:
    """Zeroed arrays of ``shapes`` in RAM (the counterpart of :meth:`MappedCache.build`)."""
    yield [np.zeros(s, _KINDS[kind][1]) for s in shapes]
