"""Sequence datasets: the on-disk format (:mod:`.manifest`), scene cuts and ``extract``."""

from retarget.dataset.manifest import Dataset, FrameRecord, VideoRecord, read_dataset, write_manifest

__all__ = ["Dataset", "FrameRecord", "VideoRecord", "read_dataset", "write_manifest"]
