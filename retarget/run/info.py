"""``DataInfo``: what a run remembers about each domain's training data.

Render repeats how the training frames were cut (the alignment mode, whole frames or
centre squares, the ``--crop`` region, the face options, the scene-cut threshold) and the
scale the generator saw them at, so a run stores this for both
domains, once, in its weights file's metadata (docs/checkpoints.md). It is built in one
place, :meth:`DataInfo.of_dataset`, from the dataset's manifest.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Optional

from retarget.config import FaceConfig, from_dict
from retarget.dataset.manifest import Dataset, cut_threshold, last_extract_options

#: Extract's default scene-cut threshold, used when neither the run nor the dataset knows.
DEFAULT_CUT_THRESHOLD = 0.5


@dataclass(frozen=True)
class DataInfo:
    """One domain's training data, as render needs it.

    Attributes:
        align: ``"none"`` (whole frames or centre squares) or ``"face"`` (aligned face crops).
        size: side of the dataset's square frames, short side of its full frames (px); 0 when unknown.
        face: the face options the dataset was extracted with (``align="face"``), else None.
        crop: extract's ``--crop`` region ``(x, y, w, h)`` in source pixels, or None.
        cut_threshold: extract's scene-cut threshold; None for runs that did not record it
            (then :meth:`scene_threshold` asks the dataset's manifest).
        name: the dataset folder's name.
        path: the dataset folder, absolute.
        frames: frames the run trained on.
        frame: ``"full"`` (whole frames, aspect kept: render translates the whole frame) or
            ``"square"`` (centre squares, face crops, and runs from before full frames).
        scale: short side (px) the frames had in training (the run's load size, before the
            random crops); 0 when unknown (runs from before it was recorded).
    """

    align: str = "none"
    size: int = 0
    face: Optional[FaceConfig] = None
    crop: Optional[tuple[int, int, int, int]] = None
    cut_threshold: Optional[float] = None
    name: str = ""
    path: str = ""
    frames: int = 0
    frame: str = "square"
    scale: int = 0

    @classmethod
    def of_dataset(cls, ds: Dataset, frames: int = 0, scale: int = 0) -> "DataInfo":
        """The info of a dataset read with :func:`retarget.dataset.manifest.read_dataset`.

        ``scale`` is the short side (px) the trainer resized its frames to (its load size).
        """
        last = last_extract_options(ds.options)
        crop = last.get("crop")
        threshold = last.get("cut_threshold", DEFAULT_CUT_THRESHOLD) if last else None
        return cls(
            align=ds.align,
            size=int(ds.size),
            face=ds.face,
            crop=tuple(int(v) for v in crop) if crop else None,  # type: ignore[arg-type]
            cut_threshold=float(threshold) if threshold is not None else None,
            name=ds.root.name,
            path=str(Path(ds.root).resolve()),
            frames=int(frames),
            frame=ds.frame,
            scale=int(scale or 0),
        )

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "DataInfo":
        """Rebuild from :meth:`to_dict` output (or the untyped dict of older runs)."""
        face = data.get("face")
        crop = data.get("crop")
        threshold = data.get("cut_threshold")
        return cls(
            align=str(data.get("align") or "none"),
            size=int(data.get("size") or 0),
            face=from_dict(FaceConfig, face) if isinstance(face, dict) else None,
            crop=tuple(int(v) for v in crop) if crop else None,  # type: ignore[arg-type]
            cut_threshold=float(threshold) if threshold is not None else None,
            name=str(data.get("name", "")),
            path=str(data.get("path", "")),
            frames=int(data.get("frames") or 0),
            frame="full" if data.get("frame") == "full" else "square",
            scale=int(data.get("scale") or 0),
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (tuples become lists)."""
        out = dataclasses.asdict(self)
        out["crop"] = list(self.crop) if self.crop else None
        return out

    def scene_threshold(self) -> float:
        """The scene-cut threshold to repeat: the recorded one, else the dataset's, else extract's default."""
        if self.cut_threshold is not None:
            return self.cut_threshold
        return cut_threshold(self.path, DEFAULT_CUT_THRESHOLD)  # runs trained before it was recorded


def data_to_json(data: Mapping[str, DataInfo | Mapping[str, Any]]) -> str:
    """``{"A": DataInfo, "B": DataInfo}`` (or plain dicts) as the JSON stored in a weights file."""
    return json.dumps({k: as_data_info(v).to_dict() for k, v in data.items()}, sort_keys=True)


def data_from_json(text: str) -> dict[str, DataInfo]:
    """Inverse of :func:`data_to_json`; ``{}`` for empty or malformed text."""
    try:
        raw = json.loads(text or "{}")
    except ValueError:
        return {}
    if not isinstance(raw, dict):
        return {}
    return {k: DataInfo.from_dict(v) for k, v in raw.items() if isinstance(v, dict)}


def as_data_info(value: DataInfo | Mapping[str, Any]) -> DataInfo:
    """``value`` as a :class:`DataInfo` (dicts are converted)."""
    return value if isinstance(value, DataInfo) else DataInfo.from_dict(value)
