"""The sequence dataset on disk: ``manifest.json`` beside a ``frames/`` folder.

See docs/dataset.md for the format. :func:`read_dataset` also accepts a plain folder
of ordered images (as other tools write), read as one segment in natural name order.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import re
from dataclasses import dataclass, field
from datetime import datetime, timezone
from fractions import Fraction
from pathlib import Path
from typing import Any, Optional, Sequence

import numpy as np

from retarget.atomic import atomic_file
from retarget.config import FaceConfig, from_dict
from retarget.errors import RetargetError

MANIFEST = "manifest.json"
FORMAT = "retarget-dataset"
#: Bumped when a reader of an older version could misread a newer file.
SCHEMA_VERSION = 1
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff")


@dataclass(frozen=True)
class VideoRecord:
    """A source video of the dataset."""

    path: str  # as given on the command line, made absolute
    width: int  # display size after rotation (px)
    height: int
    fps: float  # average frame rate
    time_base: str  # pts unit as "num/den" seconds
    frame_count: int  # container's count; 0 if unknown
    duration: float  # seconds; 0.0 if unknown
    rotation: int  # degrees counter-clockwise applied on decode
    codec: str
    sha256: str  # hash of the file's bytes
    bad_frames: int = 0  # packets/frames that failed to decode


@dataclass(frozen=True)
class FrameRecord:
    """One image of the dataset.

    ``matrix`` maps source pixels (x, y, 1) to crop pixels: ``crop = M @ [x, y, 1]``;
    it exists for both align modes. ``landmarks`` are 68 points in source pixels, face
    mode only.
    """

    file: str  # path relative to the dataset folder, "/"-separated
    segment: int  # frames of one segment are consecutive in time
    video: int = 0  # index into Dataset.videos (-1 for plain image folders)
    index: int = -1  # frame index in the source stream
    time: float = math.nan  # seconds from the source stream's start
    matrix: Optional[np.ndarray] = None  # 2x3 float64, source -> crop pixels
    landmarks: Optional[np.ndarray] = None  # (68, 2) float32, source pixels


@dataclass
class Dataset:
    """A sequence dataset: frames grouped in temporally continuous segments."""

    root: Path
    size: int  # side of square frames, short side of full ones (px); plain folders: the first image's short side
    align: str  # "none" or "face"
    face: Optional[FaceConfig]  # face options used for align face, else None
    frames: list[FrameRecord]
    videos: list[VideoRecord] = field(default_factory=list)
    image_format: str = "png"
    options: dict[str, Any] = field(default_factory=dict)  # ExtractConfig of each run, as dicts
    plain: bool = False  # a plain image folder without manifest
    created: str = ""
    frame: str = "square"  # "full": whole frames, aspect kept; "square": square crops (face, old datasets)

    def segments(self) -> list[list[int]]:
        """Indices into ``frames`` per segment, segments in order of first frame."""
        return segments_of([rec.segment for rec in self.frames])

    def path(self, i: int) -> Path:
        """Absolute path of frame ``i``'s image."""
        return self.root / self.frames[i].file

    def load(self, i: int) -> np.ndarray:
        """Frame ``i`` as H x W x 3 uint8 RGB.

        Raises:
            RetargetError: the image is missing or cannot be decoded.
        """
        import cv2

        p = self.path(i)
        data = np.fromfile(str(p), dtype=np.uint8) if p.is_file() else np.zeros(0, np.uint8)
        img = cv2.imdecode(data, cv2.IMREAD_COLOR) if data.size else None
        if img is None:
            raise RetargetError(f"{p}: missing or unreadable image")
        return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)

    def next_segment(self) -> int:
        """A segment id not used yet (for appending)."""
        return max((r.segment for r in self.frames), default=-1) + 1


def natural_key(name: str) -> list[Any]:
    """Sort key that orders ``f2.png`` before ``f10.png``."""
    return [int(t) if t.isdigit() else t.lower() for t in re.split(r"(\d+)", name)]


def _round(values: np.ndarray, digits: int) -> list[Any]:
    return np.round(np.asarray(values, dtype=np.float64), digits).tolist()


def _frame_to_json(rec: FrameRecord) -> dict[str, Any]:
    out: dict[str, Any] = {
        "file": rec.file,
        "video": rec.video,
        "index": rec.index,
        "time": None if math.isnan(rec.time) else round(rec.time, 6),
        "segment": rec.segment,
    }
    if rec.matrix is not None:
        out["matrix"] = _round(rec.matrix, 8)
    if rec.landmarks is not None:
        out["landmarks"] = _round(rec.landmarks, 2)
    return out


def _frame_from_json(d: dict[str, Any]) -> FrameRecord:
    matrix = d.get("matrix")
    landmarks = d.get("landmarks")
    time = d.get("time")
    return FrameRecord(
        file=str(d["file"]),
        segment=int(d["segment"]),
        video=int(d.get("video", 0)),
        index=int(d.get("index", -1)),
        time=math.nan if time is None else float(time),
        matrix=None if matrix is None else np.asarray(matrix, dtype=np.float64).reshape(2, 3),
        landmarks=None if landmarks is None else np.asarray(landmarks, dtype=np.float32).reshape(-1, 2),
    )


def dataset_to_json(ds: Dataset) -> dict[str, Any]:
    """The manifest of ``ds`` as a JSON-ready dict (schema in docs/dataset.md)."""
    return {
        "format": FORMAT,
        "version": SCHEMA_VERSION,
        "created": ds.created or datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "size": ds.size,
        "align": ds.align,
        "frame": ds.frame,
        "face": None if ds.face is None else dataclasses.asdict(ds.face),
        "image_format": ds.image_format,
        "options": ds.options,
        "videos": [dataclasses.asdict(v) for v in ds.videos],
        "segments": len(ds.segments()),
        "frames": [_frame_to_json(r) for r in ds.frames],
    }


def write_manifest(ds: Dataset, folder: str | os.PathLike[str] | None = None) -> Path:
    """Write ``manifest.json`` of ``ds`` into ``folder`` (default ``ds.root``) atomically.

    Returns the manifest path.
    """
    folder = Path(folder) if folder is not None else ds.root
    target = folder / MANIFEST
    data = dataset_to_json(ds)
    frames = data.pop("frames")
    # One line per frame keeps large manifests readable and diff-friendly.
    head = json.dumps(data, indent=1)
    body = ",\n".join("  " + json.dumps(f, separators=(",", ":")) for f in frames)
    text = head[:-2] + ',\n "frames": [\n' + body + ("\n ]\n}\n" if frames else " ]\n}\n")
    with atomic_file(target) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return target


def _frame_mode(value: Any, path: Path) -> str:
    """The manifest's ``frame``: ``"square"`` when absent (datasets from before full frames)."""
    if value is None:
        return "square"
    if value not in ("full", "square"):
        raise RetargetError(f"{path}: unknown frame mode {value!r} (expected full or square)")
    return str(value)


def _read_manifest(root: Path) -> Dataset:
    path = root / MANIFEST
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise RetargetError(f"{path}: cannot read ({exc})") from None
    except json.JSONDecodeError as exc:
        raise RetargetError(f"{path}: not valid JSON (line {exc.lineno}: {exc.msg})") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise RetargetError(f"{path}: not a retarget dataset manifest")
    version = data.get("version")
    if not isinstance(version, int) or version > SCHEMA_VERSION:
        raise RetargetError(
            f"{path}: dataset schema version {version} is newer than this retarget understands ({SCHEMA_VERSION}); upgrade retarget"
        )
    try:
        face = data.get("face")
        videos = [from_dict(VideoRecord, v) for v in data.get("videos", [])]
        return Dataset(
            root=root,
            size=int(data["size"]),
            align=str(data.get("align", "none")),
            face=from_dict(FaceConfig, face) if isinstance(face, dict) else None,
            frames=[_frame_from_json(f) for f in data["frames"]],
            frame=_frame_mode(data.get("frame"), path),
            videos=videos,
            image_format=str(data.get("image_format", "png")),
            options=data.get("options", {}) or {},
            created=str(data.get("created", "")),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise RetargetError(f"{path}: malformed manifest ({type(exc).__name__}: {exc})") from None


def _read_plain(root: Path) -> Dataset:
    files = sorted(
        (
            p
            for p in root.iterdir()
            if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES and not p.name.startswith(".")
        ),
        key=lambda p: natural_key(p.name),
    )
    if not files:
        raise RetargetError(
            f"{root}: no manifest.json and no images (expected `retarget extract` output or image files)"
        )
    size = 0
    try:
        import cv2

        # the bytes, not cv2.imread: OpenCV crashes on a file name that is not UTF-8
        raw = np.fromfile(files[0], dtype=np.uint8)
        first = cv2.imdecode(raw, cv2.IMREAD_UNCHANGED) if raw.size else None
        if first is not None:
            size = int(min(first.shape[:2]))
    except ImportError:  # pragma: no cover - OpenCV is a hard dependency
        pass
    frames = [FrameRecord(file=p.name, segment=0, video=-1, index=i) for i, p in enumerate(files)]
    fmt = files[0].suffix.lower().lstrip(".")
    # training uses plain images whole (their aspect kept), as extract's --frame full
    return Dataset(
        root=root, size=size, align="none", face=None, frames=frames, plain=True, image_format=fmt, frame="full"
    )


def read_dataset(path: str | os.PathLike[str]) -> Dataset:
    """Read a dataset folder: ``retarget extract`` output, or a plain folder of images.

    A plain folder becomes one segment of its images (png/jpg/bmp/webp/tif) in natural
    name order (``2.png`` before ``10.png``), with ``align="none"`` and ``face=None``.

    Raises:
        RetargetError: the folder is missing, holds neither a manifest nor images, or the
            manifest is malformed or from a newer schema.
    """
    root = Path(path)
    if not root.exists():
        raise RetargetError(f"{root}: dataset folder not found")
    if not root.is_dir():
        raise RetargetError(f"{root}: not a folder (expected a dataset folder)")
    if (root / MANIFEST).is_file():
        return _read_manifest(root)
    return _read_plain(root)


def video_record(info: Any, sha256: str, bad_frames: int = 0) -> VideoRecord:
    """A :class:`VideoRecord` from a :class:`retarget.video.reader.VideoInfo`."""
    tb = Fraction(info.time_base)
    return VideoRecord(
        path=str(Path(info.path).resolve()),
        width=int(info.width),
        height=int(info.height),
        fps=float(info.fps),
        time_base=f"{tb.numerator}/{tb.denominator}",
        frame_count=int(info.frame_count),
        duration=float(info.duration),
        rotation=int(info.rotation),
        codec=str(info.codec),
        sha256=sha256,
        bad_frames=int(bad_frames),
    )


def file_sha256(path: str | os.PathLike[str], chunk: int = 1 << 20) -> str:
    """Hex SHA-256 of a file, read in chunks so large videos need little memory."""
    import hashlib

    h = hashlib.sha256()
    with open(path, "rb") as f:
        while True:
            block = f.read(chunk)
            if not block:
                break
            h.update(block)
    return h.hexdigest()


def segments_of(ids: Sequence[int]) -> list[list[int]]:
    """Group positions by segment id, in order of first appearance."""
    groups: dict[int, list[int]] = {}
    for i, s in enumerate(ids):
        groups.setdefault(int(s), []).append(i)
    return list(groups.values())


def last_extract_options(options: Any) -> dict[str, Any]:
    """The options of a dataset's last ``retarget extract`` run (``{}`` for a plain folder)."""
    runs = options.get("runs") if isinstance(options, dict) else None
    return dict(runs[-1]) if runs and isinstance(runs[-1], dict) else {}


def cut_threshold(path: str | os.PathLike[str] | None, default: float = 0.5) -> float:
    """The scene-cut threshold the dataset in ``path`` was extracted with.

    ``default`` (extract's own) when the folder is gone, is not a ``retarget extract``
    dataset, or its manifest does not record one.
    """
    if not path:
        return default
    try:
        data = json.loads((Path(path) / MANIFEST).read_text(encoding="utf-8"))
        value = last_extract_options(data.get("options", {})).get("cut_threshold")
        return float(value) if value is not None else default
    except (OSError, ValueError, TypeError, AttributeError):
        return default  # dataset moved or not ours
