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


def _dead_pid() -> int:
    import subprocess
    import sys

    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_temp_names_record_the_writers_pid(tmp_path):
    import os

    with atomic_file(tmp_path / "out.mp4") as tmp:
        assert tmp.name.startswith(f".out.mp4.{os.getpid()}-") and tmp.name.endswith(".tmp.mp4")
        tmp.write_bytes(b"x")
    with atomic_dir(tmp_path / "ds") as tmp:
        assert tmp.name.startswith(f".ds.{os.getpid()}-") and tmp.name.endswith(".tmp")


def test_stale_temps_of_dead_writers_are_removed_and_nothing_else(tmp_path):
    import os

    from retarget.atomic import _HOST, remove_stale_temps

    dead, me = _dead_pid(), os.getpid()
    stale_file = tmp_path / f".out.mp4.{dead}-{_HOST}.k2j4h5g6.tmp.mp4"
    stale_dir = tmp_path / f".ext_a.{dead}-{_HOST}.ab_cd123.tmp"
    stale_png = tmp_path / f".loss_curve.png.{dead}-{_HOST}.zzzzzzzz.tmp.png"
    live = tmp_path / f".out.mp4.{me}-{_HOST}.k2j4h5g6.tmp.mp4"  # a writer still at work
    keep = [
        live,
        tmp_path / f".out.mp4.{dead}-{'0' * 6 if _HOST != '000000' else '111111'}.k2j4h5g6.tmp.mp4",  # another host
        tmp_path / ".out.mp4.k2j4h5g6.tmp.mp4",  # no pid: not provably ours
        tmp_path / f".notes.{dead}.tmp",  # similar, but not our naming
        tmp_path / f"out.mp4.{dead}-{_HOST}.k2j4h5g6.tmp.mp4",  # not hidden
        tmp_path / f".out.mp4.{dead}-{_HOST}.k2j4h5g6.tmp.mp4.bak",
        tmp_path / "out.mp4",
    ]
    for p in [stale_file, stale_png, *keep]:
        p.write_bytes(b"x")
    stale_dir.mkdir()
    (stale_dir / "frames").mkdir()
    (stale_dir / "frames" / "0.png").write_bytes(b"x")
    removed = remove_stale_temps(tmp_path)
    assert sorted(removed) == sorted([stale_file, stale_dir, stale_png])
    assert sorted(tmp_path.iterdir()) == sorted(keep)
    assert remove_stale_temps(tmp_path / "missing") == []


def test_a_dataset_parked_by_a_killed_replace_is_put_back(tmp_path):
    from retarget.atomic import _HOST, remove_stale_temps

    dead = _dead_pid()
    parked = tmp_path / f".ds.{dead}-{_HOST}.old"
    parked.mkdir()
    (parked / "manifest.json").write_text("{}")
    # Killed between moving the old dataset aside and moving the new one in.
    assert remove_stale_temps(tmp_path) == [parked]
    assert (tmp_path / "ds" / "manifest.json").read_text() == "{}"
    # With the target in place, the parked copy is just a leftover.
    parked.mkdir()
    assert remove_stale_temps(tmp_path) == [parked]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ds"]


def test_write_errors_become_one_line_naming_the_path(tmp_path):
    import errno

    import av

    from retarget.atomic import write_errors
    from retarget.errors import RetargetError

    target = tmp_path / "out.mp4"
    cases = [
        (OSError(errno.ENOSPC, "No space left on device"), "no space left on device"),
        (OSError(errno.EROFS, "Read-only file system"), "read-only file system"),
        (PermissionError(errno.EACCES, "Permission denied"), "permission denied"),
        (av.error.OSError(errno.ENOSPC, "No space left on device"), "no space left on device"),
    ]
    for exc, words in cases:
        with pytest.raises(RetargetError) as err:
            with write_errors(target):
                raise exc
        assert str(err.value).startswith(f"{target}: cannot write: {words}") and "\n" not in str(err.value)
    with pytest.raises(FileNotFoundError):  # not about the destination: unchanged
        with write_errors(target):
            raise FileNotFoundError(errno.ENOENT, "No such file or directory")


def test_write_errors_understand_safetensors_and_torch_save_on_a_full_disk(tmp_path, monkeypatch):
    import shutil
    from collections import namedtuple

    from retarget.atomic import write_errors
    from retarget.errors import RetargetError

    class SafetensorError(Exception):  # what safetensors raises: not an OSError
        pass

    target = tmp_path / "weights.safetensors"
    with pytest.raises(RetargetError, match="weights.safetensors: cannot write: no space left on device"):
        with write_errors(target):
            raise SafetensorError("Error while serializing: I/O error: No space left on device (os error 28)")
    # torch.save gives no reason at all; it is blamed on the disk only when the disk is full.
    usage = namedtuple("usage", "total used free")
    with pytest.raises(RuntimeError, match="unexpected pos"):
        with write_errors(tmp_path / "state.pt"):
            raise RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 576 vs 534")
    monkeypatch.setattr(shutil, "disk_usage", lambda p: usage(100, 100, 0))
    with pytest.raises(RetargetError, match="state.pt: cannot write: no space left on device"):
        with write_errors(tmp_path / "state.pt"):
            raise RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 576 vs 534")
    with pytest.raises(RuntimeError, match="out of memory"):  # not a write failure: unchanged
        with write_errors(target):
            raise RuntimeError("CUDA out of memory")
    with pytest.raises(ValueError):
        with write_errors(target):
            raise ValueError("bad value")


def test_discard_removes_a_folder_whole_and_ignores_a_missing_one(tmp_path):
    from retarget.atomic import discard

    (tmp_path / "step_1").mkdir()
    (tmp_path / "step_1" / "w.bin").write_bytes(b"x" * 10)
    (tmp_path / "keep.txt").write_text("k")
    discard(tmp_path / "step_1")
    discard(tmp_path / "missing")
    assert [p.name for p in tmp_path.iterdir()] == ["keep.txt"]


def test_write_error_names_a_folder_that_cannot_hold_files(tmp_path):
    import errno

    from retarget.atomic import write_error

    blocker = tmp_path / "afile"
    blocker.write_text("x")
    target = blocker / "out.mp4"
    exc = NotADirectoryError(errno.ENOTDIR, "Not a directory", str(blocker / ".out.mp4.1-abc.tmp.mp4"))
    err = write_error(target, exc)
    assert err is not None and str(err).startswith(f"{target}: cannot write: its folder cannot hold files")
    # the same error about some other file (an input, a bug) keeps its traceback
    other = FileNotFoundError(errno.ENOENT, "No such file", str(tmp_path / "elsewhere" / "input.png"))
    assert write_error(target, other) is None


def _record_fsyncs(monkeypatch):
    """Record what each os.fsync flushed: (path, whether the target existed yet)."""
    import os
    from pathlib import Path

    real, synced = os.fsync, []

    def fsync(fd):
        synced.append(Path(os.readlink(f"/proc/self/fd/{fd}")))
        real(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    return synced


@pytest.mark.skipif(not __import__("os").path.isdir("/proc/self/fd"), reason="needs /proc to name the synced files")
def test_a_durable_folder_is_flushed_before_the_rename_and_its_parent_after(tmp_path, monkeypatch):
    synced = _record_fsyncs(monkeypatch)
    target = tmp_path / "step_1"
    with atomic_dir(target, durable=True) as tmp:
        (tmp / "a.bin").write_bytes(b"a")
        (tmp / "b.bin").write_bytes(b"b")
    assert [p.name for p in synced[:2]] == ["a.bin", "b.bin"] and all(p.parent == tmp for p in synced[:2])
    assert synced[2:] == [tmp, tmp_path]  # the folder's entries, then the rename itself
    synced.clear()
    with atomic_dir(tmp_path / "plain") as tmp:
        (tmp / "a.bin").write_bytes(b"a")
    assert synced == []  # not asked for: no cost


def test_a_checkpoint_is_durable(tmp_path, monkeypatch):
    import torch

    from retarget.config import model_preset
    from retarget.nn.networks import build_networks
    from retarget.run import checkpoint as ckpt
    from retarget.run import layout

    if not __import__("os").path.isdir("/proc/self/fd"):
        pytest.skip("needs /proc to name the synced files")
    synced = _record_fsyncs(monkeypatch)
    cfg = model_preset("tiny", model="cyclegan", size=32)
    torch.manual_seed(0)
    final = ckpt.write_checkpoint(tmp_path, 5, build_networks(cfg), cfg, {"step": 5})
    names = {p.name for p in synced}
    assert {layout.WEIGHTS, layout.STATE} <= names and final.parent in synced
