"""The synthetic domains: seeded, different in appearance, shared motion, with audio."""

from __future__ import annotations

import av
import numpy as np
import pytest

from retarget.demo import synth


def test_motion_is_deterministic_and_seed_dependent():
    a, b, c = synth.make_motion(40, 3), synth.make_motion(40, 3), synth.make_motion(40, 4)
    for field in ("x", "y", "scale", "angle"):
        np.testing.assert_array_equal(getattr(a, field), getattr(b, field))
    assert not np.allclose(a.x, c.x)


def test_motion_is_smooth_and_inside_the_frame():
    m = synth.make_motion(200, 11)
    for field in ("x", "y"):
        v = getattr(m, field)
        assert v.min() >= 0.2 and v.max() <= 0.8
        assert np.abs(np.diff(v)).max() < 0.05  # no jumps between frames
        assert v.std() > 0.03  # it does move
    assert np.abs(np.diff(m.angle)).min() > 0.01  # it does rotate


def test_same_motion_renders_to_the_same_centroid_track_in_both_domains():
    m = synth.make_motion(48, 5)
    a = synth.render_clip("A", m, 64, seed=1)
    b = synth.render_clip("B", m, 64, seed=2)
    truth = np.stack([m.x, m.y], axis=1)
    ca, cb = synth.object_centroids(a), synth.object_centroids(b)
    assert np.abs(ca - truth).max() < 0.03
    assert np.abs(cb - truth).max() < 0.03
    assert synth.track_correlation(ca, cb) > 0.95


def test_domains_differ_in_appearance():
    m = synth.make_motion(24, 5)
    a = synth.render_clip("A", m, 64, seed=1)
    b = synth.render_clip("B", m, 64, seed=1)
    ma, mb = synth.mean_rgb(a), synth.mean_rgb(b)
    assert ma[0] > ma[2] + 50  # warm: red over blue
    assert mb[2] > mb[0] + 40  # cool: blue over red
    assert np.linalg.norm(ma - mb) > 150

    # A's background is smooth, B's is textured
    def grad(x):
        return np.abs(np.diff(x[0, :16, :16].astype(float), axis=1)).mean()

    assert grad(b) > 3 * grad(a)


def test_track_correlation_detects_unrelated_motion():
    ca = np.stack([synth.make_motion(60, 1).x, synth.make_motion(60, 1).y], axis=1)
    cb = np.stack([synth.make_motion(60, 2).x, synth.make_motion(60, 2).y], axis=1)
    assert synth.track_correlation(ca, ca + 0.1) == pytest.approx(1.0)
    assert synth.track_correlation(ca, cb) < 0.9
    assert synth.track_correlation(ca, np.full_like(ca, 0.5)) == 0.0


def test_make_domain_writes_deterministic_videos_with_audio(tmp_path):
    clips1 = synth.make_domain(tmp_path / "one", "B", seed=7, clips=2, frames=12, size=32)
    clips2 = synth.make_domain(tmp_path / "two", "B", seed=7, clips=2, frames=12, size=32)
    assert [c.path.name for c in clips1] == ["B_00.mp4", "B_01.mp4"]
    assert clips1[0].seed != clips1[1].seed
    for c1, c2 in zip(clips1, clips2):
        f1, f2 = synth.read_frames(c1.path), synth.read_frames(c2.path)
        assert f1.shape == (12, 32, 32, 3)
        np.testing.assert_array_equal(f1, f2)
        with av.open(str(c1.path)) as container:
            kinds = sorted(s.type for s in container.streams)
            assert kinds == ["audio", "video"]
            assert container.streams.video[0].average_rate == 25
    # no temporary files left behind
    assert sorted(p.name for p in (tmp_path / "one").iterdir()) == ["B_00.mp4", "B_01.mp4"]


def test_written_video_keeps_colours_and_track(tmp_path):
    m = synth.make_motion(20, 9)
    frames = synth.render_clip("A", m, 48, seed=9)
    path = synth.write_video(tmp_path / "a.mp4", frames, fps=10, audio=synth.tone(2.0, 9, "A"))
    back = synth.read_frames(path)
    assert back.shape == frames.shape
    assert np.abs(synth.mean_rgb(back) - synth.mean_rgb(frames)).max() < 4
    assert synth.track_correlation(synth.object_centroids(back), synth.object_centroids(frames)) > 0.98


def test_tone_is_seeded_and_domain_pitched():
    a = synth.tone(1.0, 3, "A", rate=8000)
    assert a.dtype == np.float32 and a.shape == (8000,) and np.abs(a).max() <= 0.5
    np.testing.assert_array_equal(a, synth.tone(1.0, 3, "A", rate=8000))

    # B is higher pitched: more zero crossings per second
    def crossings(x):
        return int((np.diff(np.sign(x)) != 0).sum())

    assert crossings(synth.tone(1.0, 3, "B", rate=8000)) > crossings(a)


def test_bad_size_is_rejected(tmp_path):
    with pytest.raises(ValueError, match="even"):
        synth.make_domain(tmp_path, "A", size=33, clips=1, frames=2)
