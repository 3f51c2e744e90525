"""Video input/output with PyAV: :mod:`retarget.video.reader` decodes, ``writer`` encodes."""

from retarget.video.reader import Frame, VideoInfo, VideoReader, probe

__all__ = ["Frame", "VideoInfo", "VideoReader", "probe"]
