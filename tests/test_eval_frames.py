"""Frame matching by time and the common comparison size (retarget.eval.frames)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from retarget.eval.frames import TimeMatcher, common_size, fit


@dataclass
class F:
    time: float
    name: str = ""


def _stream(times, log=None):
    for i, t in enumerate(times):
        if log is not None:
            log.append(i)
        yield F(t, f"r{i}")


def test_equal_rates_match_one_to_one():
    m = TimeMatcher(_stream([i / 25 for i in range(5)]), tolerance=0.02)
    got = [m.take(i / 25 + 0.003) for i in range(5)]
    assert [g.name for g in got] == ["r0", "r1", "r2", "r3", "r4"]
    m.finish()
    assert (m.seen, m.matched, m.unmatched) == (5, 5, 0)


def test_missing_and_extra_frames_are_counted():
    ref = [i / 25 for i in range(10) if i != 4]  # reference lacks frame 4
    m = TimeMatcher(_stream(ref), tolerance=0.02)
    got = [m.take(i / 25) for i in range(8)]  # output stops at 7
    assert got[4] is None
    assert [g.name for g in got if g is not None] == ["r0", "r1", "r2", "r3", "r4", "r5", "r6"]
    m.finish()
    assert m.seen == 9 and m.matched == 7 and m.unmatched == 2  # reference frames 8 and 9


def test_a_reference_frame_serves_once_and_far_frames_do_not_match():
    m = TimeMatcher(_stream([0.0, 0.04, 0.08]), tolerance=0.02)
    assert m.take(0.0).name == "r0"
    assert m.take(0.005) is None  # r0 used; r1 is 35 ms away
    assert m.take(0.04).name == "r1"
    assert m.take(1.0) is None
    m.finish()
    assert m.unmatched == 1  # r2, passed over


def test_matching_streams_the_reference():
    log: list[int] = []
    m = TimeMatcher(_stream([i / 25 for i in range(1000)], log), tolerance=0.02)
    m.take(0.0)
    m.take(0.04)
    assert len(log) <= 4  # only frames up to the tolerance window were read


def test_common_size_and_fit():
    # writer's even padding of an odd source is cropped off
    assert common_size((176, 144), [(175, 143)]) == (175, 143)
    padded = np.zeros((144, 176, 3), np.uint8)
    assert fit(padded, (175, 143)).shape == (143, 175, 3)
    # a model-size square against a landscape source: compared at the square
    assert common_size((128, 128), [(640, 272)]) == (128, 128)
    # a big output against a small source: shrunk to fit the source's crop
    assert common_size((640, 272), [(320, 136)]) == (320, 136)
    assert common_size((64, 48), [(64, 48), (64, 48)]) == (64, 48)


def test_fit_centre_crops_to_the_aspect_ratio():
    img = np.zeros((40, 100, 3), np.uint8)
    img[:, 30:70] = 255  # the centre square
    sq = fit(img, (20, 20))
    assert sq.shape == (20, 20, 3)
    assert sq.min() == 255  # only the centre square was kept
    same = fit(img, (100, 40))
    assert same is img
