"""A translated video next to its source, from the two files: no generator runs again.

The app shows a render and its side-by-side; rendering twice would run the generator
twice. :func:`side_by_side_video` decodes the source and the translation in step and
writes them next to each other (:func:`retarget.render.compose.side_by_side`), with the
translation's timestamps and sound, under a temporary name renamed when complete.
"""

from __future__ import annotations

from pathlib import Path

from retarget.atomic import atomic_file, write_errors
from retarget.errors import RetargetError
from retarget.render.compose import side_by_side
from retarget.video.reader import VideoReader, probe
from retarget.video.writer import VideoWriter

__all__ = ["side_by_side_video"]


def side_by_side_video(source: str | Path, translated: str | Path, out: str | Path, crf: int = 18) -> int:
    """Write ``source`` (left, resized to the translation's height) beside ``translated`` (right) into ``out``.

    ``translated`` is a render of ``source`` (one frame per source frame); its timestamps
    and audio are kept. Returns the frames written.

    Raises:
        RetargetError: the two do not have the same number of frames, or an unreadable input.
    """
    left_info, right_info = probe(source), probe(translated)
    height = right_info.height
    width = right_info.width + max(1, round(left_info.width * height / left_info.height))
    out = Path(out)
    frames = 0
    with write_errors(out), atomic_file(out) as tmp:
        writer = VideoWriter(tmp, width, height, right_info.time_base, right_info.fps, crf=crf, audio_from=translated)
        with writer, VideoReader(source, info=left_info) as lefts, VideoReader(translated, info=right_info) as rights:
            left_frames, right_frames = iter(lefts), iter(rights)
            for right in right_frames:
                left = next(left_frames, None)
                if left is None:
                    raise RetargetError(f"{translated}: more frames than {source}; not a render of it")
                writer.write(side_by_side(left.image, right.image), right.pts)
                frames += 1
            if next(left_frames, None) is not None:
                raise RetargetError(f"{source}: more frames than {translated}; not a render of it")
    return frames
