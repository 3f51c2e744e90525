"""Read an image file by its bytes: OpenCV's ``imread`` crashes the process on a path that is not UTF-8."""

from __future__ import annotations

import os
from typing import Optional

import numpy as np


def read_image(path: str | os.PathLike[str], flags: Optional[int] = None) -> Optional[np.ndarray]:
    """The image at ``path`` as OpenCV decodes it (BGR, ``H x W x 3`` uint8 by default), or None.

    None for a missing, empty or undecodable file. The bytes are read by Python and
    decoded by ``cv2.imdecode``, so any path the file system holds works, bytes that are
    not UTF-8 included (``cv2.imread`` takes the name as UTF-8 and segfaults on others).
    """
    import cv2

    try:
        data = np.fromfile(os.fspath(path), dtype=np.uint8)
    except OSError:
        return None
    if data.size == 0:
        return None
    return cv2.imdecode(data, cv2.IMREAD_COLOR if flags is None else flags)
