"""Encode and write frame images in a thread pool.

PNG compression costs about as much as decoding a frame, so it runs beside the
decoder: OpenCV releases the GIL while encoding, and the number of frames in flight
is bounded so a fast decoder cannot fill memory.
"""

from __future__ import annotations

import collections
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Callable, Deque, Optional

import cv2
import numpy as np

from retarget.atomic import write_error
from retarget.errors import RetargetError

#: PNG settings. OpenCV's default tries every row filter, which costs more than the
#: compression itself; the "up" filter with run-length zlib at level 1 encodes a 256 px
#: frame 2-3x faster with files within a few percent of the default's size (measured
#: on the development clips, see benchmarks/extract_speed.py).
PNG_PARAMS = [cv2.IMWRITE_PNG_COMPRESSION, 1]
if hasattr(cv2, "IMWRITE_PNG_FILTER"):  # OpenCV >= 4.10
    PNG_PARAMS += [
        cv2.IMWRITE_PNG_STRATEGY, cv2.IMWRITE_PNG_STRATEGY_RLE,
        cv2.IMWRITE_PNG_FILTER, cv2.IMWRITE_PNG_FILTER_UP,
    ]  # fmt: skip


class ImageWriter:
    """Write RGB images to files from ``workers`` threads.

    Args:
        workers: encoder threads (>= 1).
        format: "png" or "jpg".
        quality: JPEG quality 1..100 (jpg only).
        max_pending: frames queued before :meth:`write` blocks; default 4 per worker.

    Errors from a worker (disk full, permission) surface as :class:`RetargetError` on a
    later :meth:`write` or on :meth:`close`.
    """

    def __init__(
        self, workers: int = 4, format: str = "png", quality: int = 95, max_pending: int | None = None
    ) -> None:
        if format not in ("png", "jpg"):
            raise ValueError(f"unknown image format {format!r}")
        self.format = format
        self.ext = "." + format
        if format == "png":
            self.params = list(PNG_PARAMS)
        else:
            self.params = [cv2.IMWRITE_JPEG_QUALITY, int(quality)]
        self.max_pending = max_pending or 4 * max(1, workers)
        self._pool = ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix="retarget-write")
        self._pending: Deque[Future[None]] = collections.deque()
        self.written = 0

    def _write(self, image: np.ndarray, path: Path, transform: Optional[Callable[[np.ndarray], np.ndarray]]) -> None:
        if transform is not None:
            image = transform(image)
        bgr = cv2.cvtColor(image, cv2.COLOR_RGB2BGR)
        ok, buf = cv2.imencode(self.ext, bgr, self.params)
        if not ok:
            raise RetargetError(f"{path}: could not encode the image")
        try:
            with open(path, "wb") as f:
                f.write(buf.tobytes())
        except OSError as exc:
            if write_error(path, exc) is not None:
                raise  # full disk, read-only, denied: the caller names its output, not this file
            raise RetargetError(f"{path}: cannot write ({exc.strerror or exc})") from None

    def _reap(self, block: bool) -> None:
        while self._pending and (block or self._pending[0].done()):
            self._pending.popleft().result()
            self.written += 1

    def write(
        self,
        image: np.ndarray,
        path: str | Path,
        transform: Optional[Callable[[np.ndarray], np.ndarray]] = None,
    ) -> None:
        """Queue ``image`` (H x W x 3 uint8 RGB) to be written to ``path``.

        Args:
            image: the picture; the caller must not modify it afterwards.
            path: destination file.
            transform: applied to ``image`` in the worker thread first (e.g. crop and
                resize), so that work also runs beside the decoder.
        """
        self._reap(block=False)
        while len(self._pending) >= self.max_pending:
            self._pending.popleft().result()
            self.written += 1
        self._pending.append(self._pool.submit(self._write, image, Path(path), transform))

    def flush(self) -> None:
        """Wait until every queued image is on disk; re-raise the first error."""
        self._reap(block=True)

    def close(self, wait: bool = True) -> None:
        """Flush (when ``wait``) and stop the threads; pending work is dropped otherwise."""
        try:
            if wait:
                self.flush()
        finally:
            if not wait:
                for f in self._pending:
                    f.cancel()
                self._pending.clear()
            self._pool.shutdown(wait=True)

    def __enter__(self) -> "ImageWriter":
        return self

    def __exit__(self, exc_type: object, *rest: object) -> None:
        self.close(wait=exc_type is None)
