"""Video input/output with PyAV: :mod:`retarget.video.reader` decodes, ``writer`` encodes."""

from retarget.video.frame import Frame
from retarget.video.reader import VideoInfo, VideoReader, probe

__all__ = ["Frame", "VideoInfo", "VideoReader", "probe"]
