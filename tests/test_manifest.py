"""The dataset format: manifest round trip, segments, plain image folders, bad manifests."""

from __future__ import annotations

import json
import math

import cv2
import numpy as np
import pytest

from retarget.config import FaceConfig
from retarget.dataset.manifest import (
    MANIFEST,
    SCHEMA_VERSION,
    Dataset,
    FrameRecord,
    VideoRecord,
    file_sha256,
    read_dataset,
    write_manifest,
)
from retarget.errors import RetargetError


def _dataset(root, align="face"):
    rng = np.random.default_rng(0)
    frames = []
    for i, seg in enumerate([0, 0, 0, 1, 1, 3]):
        m = np.array([[0.5, 0.1, 10.0 + i], [-0.1, 0.5, 3.25]])
        lm = rng.uniform(0, 100, (68, 2)).astype(np.float32) if align == "face" else None
        frames.append(FrameRecord(f"frames/000_{i:06d}.png", seg, 0, i * 2, i * 0.08, m, lm))
    video = VideoRecord("/x/a.mp4", 64, 48, 25.0, "1/12800", 30, 1.2, 90, "h264", "ab" * 32, 2)
    face = FaceConfig(margin=0.3, smooth=2.0, pick="largest") if align == "face" else None
    opts = {"runs": [{"videos": ["a.mp4"], "size": 64}]}
    return Dataset(root, 64, align, face, frames, [video], "png", opts)


def test_round_trip_keeps_everything(tmp_path):
    ds = _dataset(tmp_path)
    path = write_manifest(ds)
    assert path == tmp_path / MANIFEST
    back = read_dataset(tmp_path)
    assert (back.size, back.align, back.face, back.image_format) == (64, "face", ds.face, "png")
    assert back.videos == ds.videos
    assert back.options == ds.options
    assert not back.plain
    for a, b in zip(ds.frames, back.frames):
        assert (a.file, a.segment, a.video, a.index) == (b.file, b.segment, b.video, b.index)
        assert b.time == pytest.approx(a.time)
        np.testing.assert_allclose(b.matrix, a.matrix, atol=1e-7)
        assert b.matrix.shape == (2, 3) and b.landmarks.shape == (68, 2)
        np.testing.assert_allclose(b.landmarks, a.landmarks, atol=0.006)
    data = json.loads(path.read_text())
    assert data["version"] == SCHEMA_VERSION and data["segments"] == 3


def test_align_none_has_no_landmarks_or_face(tmp_path):
    write_manifest(_dataset(tmp_path, align="none"))
    back = read_dataset(tmp_path)
    assert back.face is None and back.align == "none"
    assert all(f.landmarks is None and f.matrix is not None for f in back.frames)


def test_segments_group_frames_in_order(tmp_path):
    ds = _dataset(tmp_path)
    assert ds.segments() == [[0, 1, 2], [3, 4], [5]]
    assert ds.next_segment() == 4


def test_load_returns_rgb(tmp_path):
    ds = _dataset(tmp_path)
    (tmp_path / "frames").mkdir()
    img = np.zeros((64, 64, 3), np.uint8)
    img[..., 0] = 200  # red
    cv2.imwrite(str(tmp_path / ds.frames[0].file), cv2.cvtColor(img, cv2.COLOR_RGB2BGR))
    assert ds.load(0)[0, 0].tolist() == [200, 0, 0]
    with pytest.raises(RetargetError, match="000_000001.png"):
        ds.load(1)


def test_plain_image_folder_is_one_segment_in_natural_order(tmp_path):
    for name in ["f10.png", "f2.png", "f1.png", ".hidden.png", "notes.txt"]:
        path = tmp_path / name
        if name.endswith(".png"):
            cv2.imwrite(str(path), np.zeros((40, 50, 3), np.uint8))
        else:
            path.write_text("x")
    ds = read_dataset(tmp_path)
    assert ds.plain and ds.align == "none" and ds.face is None
    assert [f.file for f in ds.frames] == ["f1.png", "f2.png", "f10.png"]
    assert ds.segments() == [[0, 1, 2]]
    assert ds.size == 40
    assert math.isnan(ds.frames[0].time)


@pytest.mark.parametrize(
    "setup,message",
    [
        (lambda p: p / "missing", "not found"),
        (lambda p: (p / "file.txt").write_text("x") and p / "file.txt", "not a folder"),
        (lambda p: p, "no manifest.json and no images"),
    ],
)
def test_bad_folders(tmp_path, setup, message):
    with pytest.raises(RetargetError, match=message):
        read_dataset(setup(tmp_path))


def test_malformed_manifests(tmp_path):
    (tmp_path / MANIFEST).write_text("{ not json")
    with pytest.raises(RetargetError, match="not valid JSON"):
        read_dataset(tmp_path)
    (tmp_path / MANIFEST).write_text(json.dumps({"format": "something-else"}))
    with pytest.raises(RetargetError, match="not a retarget dataset"):
        read_dataset(tmp_path)
    (tmp_path / MANIFEST).write_text(json.dumps({"format": "retarget-dataset", "version": SCHEMA_VERSION + 1}))
    with pytest.raises(RetargetError, match="newer"):
        read_dataset(tmp_path)
    (tmp_path / MANIFEST).write_text(json.dumps({"format": "retarget-dataset", "version": 1, "frames": []}))
    with pytest.raises(RetargetError, match="malformed"):
        read_dataset(tmp_path)


def test_file_sha256_streams_the_file(tmp_path):
    import hashlib

    data = bytes(range(256)) * 5000
    (tmp_path / "f").write_bytes(data)
    assert file_sha256(tmp_path / "f", chunk=1000) == hashlib.sha256(data).hexdigest()
