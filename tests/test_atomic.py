"""Outputs appear whole or not at all."""

import pytest

from retarget.atomic import atomic_dir, atomic_file


def test_atomic_file_renames_on_success(tmp_path):
    target = tmp_path / "out.mp4"
    with atomic_file(target) as tmp:
        assert tmp.parent == tmp_path and tmp.suffix == ".mp4" and tmp != target
        tmp.write_bytes(b"data")
        assert not target.exists()
    assert target.read_bytes() == b"data"
    assert list(tmp_path.iterdir()) == [target]


def test_atomic_file_leaves_nothing_when_interrupted(tmp_path):
    target = tmp_path / "out.mp4"
    with pytest.raises(KeyboardInterrupt):
        with atomic_file(target) as tmp:
            tmp.write_bytes(b"half")
            raise KeyboardInterrupt
    assert list(tmp_path.iterdir()) == []


def test_atomic_dir_refuses_then_replaces(tmp_path):
    target = tmp_path / "ds"
    with atomic_dir(target) as tmp:
        (tmp / "a.txt").write_text("1")
    assert (target / "a.txt").read_text() == "1"
    with pytest.raises(FileExistsError):
        with atomic_dir(target) as tmp:
            (tmp / "b.txt").write_text("2")
    assert not (target / "b.txt").exists()
    with atomic_dir(target, replace=True) as tmp:
        (tmp / "b.txt").write_text("2")
    assert sorted(p.name for p in target.iterdir()) == ["b.txt"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ds"]


def test_atomic_dir_cleans_up_on_error(tmp_path):
    with pytest.raises(RuntimeError):
        with atomic_dir(tmp_path / "ds") as tmp:
            (tmp / "a.txt").write_text("1")
            raise RuntimeError("boom")
    assert list(tmp_path.iterdir()) == []


def test_outputs_get_default_permissions_not_private_ones(tmp_path):
    import os

    old = os.umask(0o022)
    try:
        with atomic_file(tmp_path / "f.txt") as tmp:
            tmp.write_text("x")
        with atomic_dir(tmp_path / "d"):
            pass
    finally:
        os.umask(old)
    assert (tmp_path / "f.txt").stat().st_mode & 0o777 == 0o644
    assert (tmp_path / "d").stat().st_mode & 0o777 == 0o755
