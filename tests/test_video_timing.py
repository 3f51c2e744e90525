"""Frame timing: decode-order timestamps put back in display order (retarget.video.timing)."""

from __future__ import annotations

from types import SimpleNamespace

from retarget.video.timing import PtsReorder


def _run(pts, b_frames=True):
    pictures = [None if p == "bad" else SimpleNamespace(pts=p, n=i) for i, p in enumerate(pts)]
    reorder = PtsReorder()
    out = list(reorder(iter(pictures), SimpleNamespace(has_b_frames=b_frames)))
    return out, reorder


def test_the_i_th_picture_gets_the_i_th_smallest_pts():
    out, reorder = _run([0, 2, 3, 1, 5, 6, 4, 8, 9, 7])
    assert [p for _, p in out] == list(range(10))
    assert [pic.n for pic, _ in out] == list(range(10))  # pictures keep their order
    assert reorder.reordered == 9


def test_corrupt_pictures_and_missing_pts_keep_their_slot():
    out, _ = _run([0, 2, "bad", 1, None, 4, 3])
    assert [(pic is None, p) for pic, p in out] == [
        (False, 0),
        (False, 1),
        (True, None),
        (False, 2),
        (False, None),
        (False, 3),
        (False, 4),
    ]


def test_streams_without_b_frames_pass_through():
    out, reorder = _run([0, 2, 1, 3], b_frames=False)
    assert [p for _, p in out] == [0, 2, 1, 3] and reorder.reordered == 0


def test_a_jump_back_is_not_mixed_with_the_frames_before_it():
    # 100..129 in decode order, then the timestamps start again at 0 (concatenated files).
    shuffled = [100 + t for g in range(0, 30, 3) for t in (g, g + 2, g + 1)]
    out, _ = _run(shuffled + [0, 2, 1, 3])
    assert [p for _, p in out] == list(range(100, 130)) + [0, 1, 2, 3]
