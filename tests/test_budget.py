"""Memory budgets: estimates that scale as the memory does, one-line refusals before any allocation."""

from __future__ import annotations

import re
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from helpers import make_video, write_frames

from retarget import budget
from retarget.budget import check_extract, extract_bytes, out_of_memory
from retarget.nn.budget import check_enhancer, check_train, enhancer_bytes, render_budget, render_bytes, train_bytes
from retarget.config import EnhancerConfig, ExtractConfig, FaceConfig, ModelConfig, TrainConfig, model_preset, replace
from retarget.dataset.extract import extract
from retarget.dataset.manifest import Dataset, FrameRecord, write_manifest
from retarget.errors import RetargetError
from retarget.train import train
from retarget.train.enhancer import train_enhancer

GB = 10**9


def _train_cfg(**kw: object) -> TrainConfig:
    model = kw.pop("model", ModelConfig())
    return TrainConfig("a", "b", model=model, **kw)  # type: ignore[arg-type]


def _at_most(message: str, flag: str) -> int:
    """The value of ``at most FLAG N fits`` in a refusal, after checking the line names ``flag``."""
    assert "\n" not in message
    match = re.search(rf"at most {flag} (\d+) fits", message)
    assert match, message
    return int(match.group(1))


def test_training_activations_grow_with_the_batch_and_the_picture_area():
    one, two, four = (train_bytes(_train_cfg(batch_size=b)) for b in (1, 2, 4))
    per_sample = two - one
    assert per_sample > 0 and four - two == pytest.approx(2 * per_sample, rel=1e-6)
    small = train_bytes(_train_cfg(batch_size=2)) - train_bytes(_train_cfg(batch_size=1))
    big = train_bytes(_train_cfg(batch_size=2, model=ModelConfig(size=256))) - train_bytes(
        _train_cfg(batch_size=1, model=ModelConfig(size=256))
    )
    assert 3.5 < big / small < 4.5  # activations per sample follow the area
    # wider generators: more parameters (quadratic) and more activations
    assert train_bytes(_train_cfg(model=ModelConfig(ngf=128))) > 1.5 * train_bytes(_train_cfg())
    # each residual block adds the same amount (counted from 1 and 2 blocks for deep ones)
    six, seven, eight = (train_bytes(_train_cfg(model=ModelConfig(blocks=b))) for b in (6, 7, 8))
    assert eight - seven == seven - six > 0


def test_other_estimates_scale_with_their_options():
    model = ModelConfig()
    b2, b4 = render_bytes(model, (456, 256), 2), render_bytes(model, (456, 256), 4)
    b8 = render_bytes(model, (456, 256), 8)
    assert b8 - b4 == pytest.approx(2 * (b4 - b2), rel=1e-6)
    assert render_bytes(model, (4000, 3000), 2, tile=256) < render_bytes(model, (4000, 3000), 2) / 4
    cfg = EnhancerConfig("d")
    e1 = enhancer_bytes(replace(cfg, batch_size=8), 256, 0)
    e2, e4 = enhancer_bytes(replace(cfg, batch_size=16), 256, 0), enhancer_bytes(replace(cfg, batch_size=32), 256, 0)
    assert e4 - e2 == pytest.approx(2 * (e2 - e1), rel=1e-6)
    assert enhancer_bytes(cfg, 256, 1000) - enhancer_bytes(cfg, 256, 0) == 1000 * 256 * 256 * 3
    # a narrow network's batch is mostly its patches and their loss (3.25 GB measured at this size)
    narrow = replace(cfg, width=4, blocks=1, patch=32, batch_size=16000)
    assert 3.0 * GB < enhancer_bytes(narrow, 128, 0) < 3.6 * GB
    with pytest.raises(RetargetError, match=r"--batch-size 100000: needs about (19|2\d) GB"):
        check_enhancer(replace(narrow, batch_size=100000), 128, 0, "cpu", available=16 * GB)
    ext = ExtractConfig(("v.mp4",))
    small = extract_bytes(replace(ext, size=1000), [(64, 48)])
    large = extract_bytes(replace(ext, size=2000), [(64, 48)])
    assert 3.5 < large / small < 4.1  # the output images dominate: their area


def test_realistic_defaults_pass_on_an_eight_gigabyte_machine():
    free = 7 * GB  # an 8 GB machine with its system running
    check_train(_train_cfg(model=model_preset("default", size=256)), "cpu", available=free)
    check_train(_train_cfg(model=model_preset("official", size=128)), "cpu", available=free)
    check_train(_train_cfg(model=ModelConfig(domains=3), batch_size=2), "cpu", available=free)
    check_enhancer(EnhancerConfig("d"), 256, 2000, "cpu", available=free)
    check_extract(ExtractConfig(("v.mp4",)), [(1920, 1080), (3840, 2160)], available=free)
    render_budget(ModelConfig(), 1920, 1080, 143, 8, None, "cpu", available=free)
    render_budget(ModelConfig(), 1920, 1080, 256, 8, None, "cpu", frame="face", available=free)


@pytest.mark.parametrize(
    "cfg, flag",
    [
        (_train_cfg(batch_size=100000), "--batch-size"),
        (_train_cfg(model=ModelConfig(ngf=100000)), "--ngf"),
        (_train_cfg(model=ModelConfig(size=100000)), "--size"),
        (_train_cfg(model=ModelConfig(blocks=100000)), "--blocks"),
    ],
)
def test_an_absurd_training_option_is_named_with_the_largest_value_that_fits(cfg, flag):
    free = 20 * GB
    with pytest.raises(RetargetError) as err:
        check_train(cfg, "cpu", available=free)
    message = str(err.value)
    assert message.startswith(f"{flag} 100000: needs about ") and "this machine has 20 GB free" in message
    best = _at_most(message, flag)
    field = {"--batch-size": "batch_size"}.get(flag)
    unit = 2**cfg.model.p_depth if flag == "--size" else 1

    def at(v: int) -> TrainConfig:
        if field:
            return replace(cfg, batch_size=v)
        return replace(cfg, model=replace(cfg.model, **{flag[2:]: v}))

    assert train_bytes(at(best)) <= free < train_bytes(at(best + unit))  # the largest, not just one that fits
    check_train(at(best), "cpu", available=free)


def test_a_small_machine_is_refused_and_the_gpu_is_named(monkeypatch):
    with pytest.raises(RetargetError, match=r"this machine has 1\.0 GB free; at most --ngf \d+ fits"):
        check_train(_train_cfg(), "cpu", available=GB)
    with pytest.raises(RetargetError, match=r"^--batch-size 64: needs about .* this GPU has 4\.0 GB free; at most"):
        check_train(_train_cfg(batch_size=64), "cuda", available=4 * GB)
    # the CUDA path reads torch.cuda.mem_get_info (faked here: no GPU needed)
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda device=None: (3 * GB, 8 * GB))
    assert budget.available_memory("cuda") == 3 * GB
    assert budget.available_memory(torch.device("cuda", 0)) == 3 * GB
    with pytest.raises(RetargetError, match="this GPU has 3.0 GB free"):
        check_train(_train_cfg(batch_size=100000), "cuda")
    assert budget.available_memory("cpu") > 0


def test_options_beyond_every_single_fix_are_named_together():
    cfg = _train_cfg(batch_size=100000, model=ModelConfig(ngf=100000))
    with pytest.raises(RetargetError) as err:
        check_train(cfg, "cpu", available=20 * GB)
    head, _, advice = str(err.value).partition(": needs about ")
    assert sorted(head.split(" ")) == sorted(["--batch-size", "100000", "--ngf", "100000"])
    assert re.search(r"; lower (--batch-size and --ngf|--ngf and --batch-size)$", advice)


def test_render_refuses_an_absurd_scale_or_batch():
    with pytest.raises(RetargetError) as err:
        render_budget(ModelConfig(), 1920, 1080, 100000, 8, available=20 * GB)
    best = _at_most(str(err.value), "--scale")
    assert best % 4 == 0 and 256 < best < 100000
    render_budget(ModelConfig(), 1920, 1080, best, 8, available=20 * GB)
    with pytest.raises(RetargetError) as err:
        render_budget(ModelConfig(), 1920, 1080, 100000, 8, tile=512, available=20 * GB)
    assert _at_most(str(err.value), "--scale") > best  # tiles bound the generator's memory
    with pytest.raises(RetargetError, match="^--batch-size 100000: .*at most --batch-size"):
        render_budget(ModelConfig(), 640, 480, 64, 100000, frame="face", available=GB)


def test_out_of_memory_errors_become_one_line():
    errors = []
    for make in (
        lambda: torch.empty(2**61, dtype=torch.uint8),
        lambda: np.empty(2**61, np.uint8),
        lambda: cv2.resize(np.zeros((4, 4, 3), np.uint8), (2**30, 2**15)),
    ):
        with pytest.raises(Exception) as caught:
            make()
        errors.append(out_of_memory(caught.value))
    assert all(isinstance(e, RetargetError) and "\n" not in str(e) for e in errors)
    assert str(errors[0]).startswith("out of memory (2.3 EB requested)")  # torch's byte count, in words
    assert "2.00 EiB requested" in str(errors[1])
    assert out_of_memory(MemoryError()) is not None
    assert out_of_memory(RuntimeError("CUDA out of memory. Tried to allocate 20.00 MiB")) is not None
    assert out_of_memory(ValueError("out of memory")) is None
    assert out_of_memory(RuntimeError("shapes do not match")) is None


def _face_dataset(folder: Path, n: int = 4, size: int = 64) -> Path:
    (folder / "frames").mkdir(parents=True)
    frames = []
    for i in range(n):
        name = f"frames/{i:04d}.png"
        cv2.imwrite(str(folder / name), np.full((size, size, 3), 40 * i, np.uint8))
        frames.append(FrameRecord(file=name, segment=0, index=i))
    write_manifest(Dataset(folder, size, "face", FaceConfig(), frames))
    return folder


@pytest.mark.parametrize(
    "changes, flag",
    [
        ({"batch_size": 100000}, "--batch-size"),
        ({"model": ModelConfig(ngf=100000)}, "--ngf"),
        ({"model": ModelConfig(size=100000)}, "--size"),
    ],  # fmt: skip
)
def test_train_refuses_before_the_run_folder_exists(tmp_path, changes, flag):
    a, b = write_frames(tmp_path / "A", 4, size=36), write_frames(tmp_path / "B", 4, size=36)
    out = tmp_path / "models" / "run"
    cfg = TrainConfig(str(a), str(b), out=str(out), preview_frames=0, steps=1, **changes)  # type: ignore[arg-type]
    with pytest.raises(RetargetError, match=f"^{flag} 100000: needs about "):
        train(cfg)
    assert not (tmp_path / "models").exists()


def test_enhancer_and_extract_refuse_before_writing(tmp_path):
    data = _face_dataset(tmp_path / "faces")
    out = tmp_path / "enh"
    cfg = EnhancerConfig(str(data), out=str(out), batch_size=100000, patch=64, steps=1)
    with pytest.raises(RetargetError, match="^--batch-size 100000: .*at most --batch-size"):
        train_enhancer(cfg)
    assert not out.exists()
    video = make_video(tmp_path / "v.mp4", frames=3, size=(64, 48))
    target = tmp_path / "data" / "v"
    with pytest.raises(RetargetError, match="^--size 100000: .*at most --size"):
        extract(ExtractConfig((str(video),), output=str(target), size=100000))
    assert not (tmp_path / "data").exists() or not any((tmp_path / "data").iterdir())


def test_every_failure_is_one_line_with_its_exit_status():
    from retarget.failures import error_line

    assert error_line(RetargetError("x.mp4: no such file")) == ("x.mp4: no such file", 1)
    assert error_line(MemoryError())[0].startswith("out of memory") and error_line(MemoryError())[1] == 1
    assert error_line(PermissionError(13, "Permission denied", "/ro/out")) == ("/ro/out: Permission denied", 1)
    line, status = error_line(ValueError("shapes\ndo not match"))
    assert status == 3 and "\n" not in line and "RETARGET_DEBUG=1" in line
