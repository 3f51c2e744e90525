"""Optional TensorBoard logging (retarget.views.tensorboard): tags read back with TensorBoard's reader; absent package."""

from __future__ import annotations

import json
import time
import sys

import cv2
import numpy as np
import pytest
from helpers import make_video
from test_train_data import write_frames

from retarget.config import TrainConfig, model_preset
from retarget.train import train


def _config(tmp_path, out="run", steps=4):
    a, b = write_frames(tmp_path / "faces", 8, size=36), write_frames(tmp_path / "cats", 7, size=36, start=9)
    return TrainConfig(
        str(a),
        str(b),
        out=str(tmp_path / out),
        model=model_preset("tiny", size=32),
        preset="tiny",
        steps=steps,
        pool=0,
        checkpoint_every=100,
        preview_every=2,
        log_every=1,
        device="cpu",
    )


def _events(run_dir):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(run_dir / "tb"), size_guidance={"scalars": 0, "images": 0})
    acc.Reload()
    return acc


def test_training_logs_scalars_and_preview_grids(tmp_path, capsys):
    pytest.importorskip("tensorboard")
    train(_config(tmp_path))
    assert "TensorBoard logs in" in capsys.readouterr().err
    acc = _events(tmp_path / "run")
    tags = acc.Tags()
    assert {"loss/loss_G", "loss/loss_D", "loss/A/cycle", "loss/D_B/real", "lr", "it_s", "data_s"} <= set(
        tags["scalars"]
    )
    assert [e.step for e in acc.Scalars("loss/loss_G")] == [1, 2, 3, 4]
    logged = [json.loads(x)["loss/loss_G"] for x in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert [e.value for e in acc.Scalars("loss/loss_G")] == pytest.approx(logged)
    grids = acc.Images("preview/grid")
    assert [e.step for e in grids] == [2, 4]
    png = cv2.imread(str(tmp_path / "run" / "previews" / "step_0000004.png"))
    assert (grids[1].height, grids[1].width) == png.shape[:2]


def test_board_follows_new_metrics_and_clips(tmp_path):
    pytest.importorskip("tensorboard")
    from retarget.views.tensorboard import open_board

    run = tmp_path / "run"
    (run / "previews").mkdir(parents=True)
    board = open_board(run)
    with open(run / "metrics.jsonl", "w") as f:
        f.write(json.dumps({"step": 10, "loss/loss_G": 2.0, "it_s/rank1": 3.5}) + "\n")
        f.write(json.dumps({"step": 10, "temporal/warp_error": 0.02, "temporal/warp_error_source": 0.01}) + "\n")
        f.write('{"step": 20, "loss/lo')  # a line still being written is left for later
    make_video(run / "previews" / "source.mp4", frames=10, size=(32, 24))
    make_video(run / "previews" / "step_0000010.mp4", frames=10, size=(32, 24))
    board.sync()
    with open(run / "metrics.jsonl", "a") as f:
        f.write('ss_G": 1.0}\n')
    board.close()
    acc = _events(run)
    assert [(e.step, e.value) for e in acc.Scalars("loss/loss_G")] == [(10, 2.0), (20, 1.0)]
    assert acc.Scalars("temporal/warp_error")[0].value == pytest.approx(0.02)
    assert acc.Scalars("it_s/rank1")[0].value == pytest.approx(3.5)
    clip = acc.Images("preview/clip")
    assert [e.step for e in clip] == [10] and (clip[0].height, clip[0].width) == (24, 8 * 32)
    assert len(acc.Images("preview/source_clip")) == 1
    strip = cv2.imdecode(np.frombuffer(clip[0].encoded_image_string, np.uint8), cv2.IMREAD_COLOR)
    assert strip.shape == (24, 256, 3)

    # Event files are named events.out.tfevents.<second>.<host>.<pid>.<writer number> and read
    # in name order: two writers of one process within one second sort by their number as
    # text ("...10" before "...9" once a test session has made ten), which a resumed run, a
    # new process seconds later, never meets. Start the resumed writer in the next second.
    second = int(time.time())
    while int(time.time()) == second:
        time.sleep(0.02)
    resumed = open_board(run, start_step=20)  # a resume: what is on disk was logged before
    with open(run / "metrics.jsonl", "a") as f:
        f.write(json.dumps({"step": 21, "loss/loss_G": 0.5}) + "\n")
    resumed.close()
    acc = _events(run)
    assert [e.step for e in acc.Scalars("loss/loss_G")] == [10, 20, 21]
    assert len(acc.Images("preview/clip")) == 1 and len(acc.Images("preview/source_clip")) == 1


def test_without_tensorboard_nothing_is_imported_or_written(tmp_path, monkeypatch):
    for name in list(sys.modules):
        if name == "tensorboard" or name.startswith(("tensorboard.", "torch.utils.tensorboard")):
            monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "tensorboard", None)  # import tensorboard -> ImportError
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)
    result = train(_config(tmp_path, steps=2))
    assert result.steps == 2 and (tmp_path / "run" / "report.html").exists()
    assert not (tmp_path / "run" / "tb").exists()
    loaded = [
        n for n, m in sys.modules.items() if m is not None and n.startswith(("tensorboard", "torch.utils.tensorboard"))
    ]
    assert loaded == []
