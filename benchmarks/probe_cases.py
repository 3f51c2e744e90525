"""The fixtures and cases of ``benchmarks/probe_cli.py`` (see its docstring).

Every case is ``{"id", "argv", "why", "product"}``: ``argv`` holds ``{names}`` of
:data:`FIXTURE_ARGS`, paths relative to the fixture folder the case runs in; ``product``
is the path the command may legitimately replace (its own output), so that a change
there is not counted as lost data.
"""

from __future__ import annotations

import json
import shutil
import typing
from pathlib import Path
from typing import Any, Iterator

import numpy as np

#: The fixtures, by the names the cases use.
FIXTURE_ARGS = {
    "video": "v.mp4", "video2": "v2.mp4", "da": "data/a", "db": "data/b", "faces": "faces",
    "run": "runs/r", "enh": "enh", "text": "notes.mp4", "empty": "empty.mp4", "still": "still.png",
    "audio": "sound.m4a", "trunc": "trunc.mp4", "badcfg": "runs/badcfg", "broken": "runs/broken",
    "odd": "data/odd\udcff", "web": "site", "mine": "data/mine",
}  # fmt: skip

#: A valid, quick command line of each command, and the output it makes.
BASES: dict[str, tuple[list[str], str]] = {
    "extract": (["extract", "{video}", "-o", "out_ds", "--size", "32", "--max-frames", "6"], "out_ds"),
    "train": (
        [
            "train",
            "{da}",
            "{db}",
            "-o",
            "out_run",
            "--preset",
            "tiny",
            "--size",
            "16",
            "--steps",
            "2",
            "--checkpoint-every",
            "1",
            "--preview-every",
            "1",
            "--preview-frames",
            "2",
        ],
        "out_run",
    ),  # fmt: skip
    "render": (["render", "{video}", "out.mp4", "-m", "{run}", "--batch-size", "4"], "out.mp4"),
    "eval": (["eval", "{video}", "--source", "{video2}"], ""),
    "runs": (["runs", "runs"], ""),
    "train-enhancer": (
        [
            "train-enhancer",
            "{faces}",
            "-o",
            "out_enh",
            "--steps",
            "2",
            "--batch-size",
            "2",
            "--patch",
            "32",
            "--width",
            "4",
            "--blocks",
            "1",
        ],
        "out_enh",
    ),  # fmt: skip
    "demo": (["demo", "-o", "out_demo", "--steps", "2", "--size", "32"], "out_demo"),
}

#: Options that name a file or folder, probed with every kind of wrong file.
PATH_OPTIONS = {
    "--model", "--face-ref", "--target-faces", "--enhancer", "--init-from", "--content-model", "--truth",
    "--target", "--source", "--content-model-a", "--content-model-b", "-o", "--out", "--output",
}  # fmt: skip
#: Options whose large valid values ask for long work (not bad input): no far-out-of-reach value for them.
LONG_WORK = {"--steps", "--time-limit"}
FILE_KINDS = ["missing.mp4", "{empty}", "{text}", "{still}", "{audio}", "{trunc}", "{da}", "{run}", "{enh}", ""]


def make_fixtures(root: Path) -> None:
    """Write the fixtures of :data:`FIXTURE_ARGS` under ``root`` (about 30 s on 2 cores)."""
    import cv2

    from retarget.config import EnhancerConfig, ExtractConfig, TrainConfig, model_preset
    from retarget.dataset.extract import extract
    from retarget.demo.synth import make_motion, render_clip, tone, write_video
    from retarget.train import train
    from retarget.train.enhancer import train_enhancer

    root.mkdir(parents=True, exist_ok=True)
    for name, domain, seed in (("v.mp4", "A", 1), ("v2.mp4", "B", 2)):
        frames = render_clip(domain, make_motion(24, seed), 64, seed)[:, 8:56]  # 24 x 48 x 64
        write_video(root / name, frames, audio=tone(24 / 25, seed, domain))
    extract(ExtractConfig(videos=(str(root / "v.mp4"),), output=str(root / "data/a"), size=32))
    extract(ExtractConfig(videos=(str(root / "v2.mp4"),), output=str(root / "data/b"), size=32))
    _face_like_dataset(root / "faces")
    train(TrainConfig(str(root / "data/a"), str(root / "data/b"), out=str(root / "runs/r"),
                      model=model_preset("tiny", size=16), steps=2, checkpoint_every=1, preview_every=1,
                      preview_frames=2, threads=1))  # fmt: skip
    train_enhancer(EnhancerConfig(data=str(root / "faces"), out=str(root / "enh"), steps=2, batch_size=2, patch=32,
                                  width=4, blocks=1, time_limit=None, threads=1))  # fmt: skip
    (root / "notes.mp4").write_text("this is not a video\n")
    (root / "empty.mp4").write_bytes(b"")
    cv2.imwrite(str(root / "still.png"), np.full((48, 64, 3), 128, np.uint8))
    _audio_only(root / "sound.m4a")
    data = (root / "v.mp4").read_bytes()
    (root / "trunc.mp4").write_bytes(data[: len(data) * 2 // 5])
    shutil.copytree(root / "runs/r", root / "runs/badcfg")
    cfg = json.loads((root / "runs/badcfg/config.json").read_text())
    cfg["model"]["size"] = "abc"  # a wrong-typed value
    (root / "runs/badcfg/config.json").write_text(json.dumps(cfg))
    shutil.copytree(root / "runs/r", root / "runs/broken")
    for weights in (root / "runs/broken").rglob("*.safetensors"):
        weights.write_bytes(weights.read_bytes()[:100])  # a truncated checkpoint
    shutil.copytree(root / "data/a", root / FIXTURE_ARGS["odd"])
    (root / "site").mkdir()  # another tool's folder that also has a manifest.json
    (root / "site/manifest.json").write_text('{"name": "My Web App", "icons": []}')
    (root / "site/index.html").write_text("<html></html>\n")
    shutil.copytree(root / "data/a", root / "data/mine")  # a dataset the user put a file of their own in
    (root / "data/mine/notes.txt").write_text("mine\n")


def _face_like_dataset(folder: Path, n: int = 8, size: int = 64) -> None:
    """A dataset whose manifest says aligned faces of ``size`` px (the images are patterns)."""
    import cv2

    from retarget.config import FaceConfig
    from retarget.dataset.manifest import Dataset, FrameRecord, write_manifest

    (folder / "frames").mkdir(parents=True)
    rng = np.random.default_rng(0)
    frames = []
    for i in range(n):
        name = f"frames/{i:04d}.png"
        cv2.imwrite(str(folder / name), rng.integers(0, 255, (size, size, 3), dtype=np.uint8))
        frames.append(FrameRecord(file=name, segment=0, index=i))
    write_manifest(Dataset(folder, size, "face", FaceConfig(), frames))


def _audio_only(path: Path) -> None:
    import av

    with av.open(str(path), "w") as out:
        stream = out.add_stream("aac", rate=22050, layout="mono")
        samples = np.sin(np.linspace(0, 200, 22050)).astype(np.float32)[None]
        frame = av.AudioFrame.from_ndarray(samples, format="fltp", layout="mono")
        frame.sample_rate, frame.pts = 22050, 0
        for packet in [*stream.encode(frame), *stream.encode()]:
            out.mux(packet)


def _with(argv: list[str], flag: str, value: str | None) -> list[str]:
    """``argv`` with ``flag`` set to ``value`` (replacing a value the base gave), or a switch added."""
    out = list(argv)
    if flag in out:
        i = out.index(flag)
        del out[i : i + (1 if value is None else 2)]
    return out + ([flag] if value is None else [flag, value])


def _numbers(param: Any, kind: type) -> list[str]:
    """Values of a numeric option outside, at and far beyond its range, and of the wrong type."""
    low, high = getattr(param, "min", None), getattr(param, "max", None)
    values = ["abc", "-1", "100000"]
    if low is not None:
        values.append(str(kind(low) - 1))
    if high is not None:
        values.append(str(kind(high) + 1))
    if kind is float:
        values += ["nan", "inf", "1e30"]
    else:
        values.append("1.5")
    return values


def option_values(param: Any) -> list[str | None]:
    """The probe's values of one CLI option, from its declared type and range (None = the switch alone)."""
    if getattr(param, "is_flag", False):
        return [None]
    hint = getattr(getattr(param, "type_descriptor", None), "annotation", None)
    args = [a for a in typing.get_args(hint) if a is not type(None)] if typing.get_origin(hint) is typing.Union else []
    hint = args[0] if len(args) == 1 else hint
    name = param.opts[-1]
    if typing.get_origin(hint) is typing.Literal:
        return ["bogus", ""]
    if hint is int or hint is float:
        values = _numbers(param, hint)  # type: ignore[arg-type]
        return [v for v in values if v not in ("100000", "1e30")] if name in LONG_WORK else values
    if name in PATH_OPTIONS:
        return list(FILE_KINDS)
    return ["", "x" * 300]


def generated_cases() -> Iterator[tuple[list[str], str, str]]:
    """Every option of every command with each of its probe values: ``(argv, why, product)``."""
    import typer

    from retarget.cli import app

    group = typer.main.get_command(app)
    for name, (base, product) in BASES.items():
        command = group.commands[name]  # type: ignore[attr-defined]
        for param in command.params:
            if not getattr(param, "opts", None) or param.opts[-1] in ("--help", "--resume"):
                continue
            flag = param.opts[-1]
            values = option_values(param) if name != "demo" else option_values(param)[:3]
            for value in values:
                yield _with(base, flag, value), f"{name} {flag} {value!r}", product
        if name in ("extract", "render", "eval", "train", "train-enhancer"):
            first = base.index(next(a for a in base[1:] if a.startswith("{")))
            for kind in FILE_KINDS:  # the positional input as every wrong kind of file
                argv = list(base)
                argv[first] = kind
                yield argv, f"{name} input {kind or 'empty string'}", product


#: Combinations users get wrong: (argv, why, product).
COMBINATIONS: list[tuple[list[str], str, str]] = [
    (["extract", "{video}", "-o", ".", "--overwrite", "--size", "32"], "extract -o the folder holding the input", ""),
    (["extract", "{video}", "-o", "{run}", "--overwrite"], "extract -o a run", ""),
    (["extract", "{video}", "-o", "{enh}", "--overwrite"], "extract -o an enhancer", ""),
    (["extract", "{da}/frames/x.png", "-o", "{da}", "--overwrite"], "extract an input inside the output", ""),
    (["extract", "{video}", "-o", "{da}/sub", "--overwrite"], "extract -o inside a dataset", ""),
    (["extract", "{still}", "-o", "x"], "extract a still image", ""),
    (["extract", "{video}", "-o", "x", "--quality", "50"], "extract --quality with png frames", ""),
    (["extract", "{video}", "-o", "x", "--margin", "0.2"], "extract --margin without --align face", ""),
    (["extract", "{video}", "-o", "x", "--size", "100000"], "extract --size far out of reach", ""),
    (["train-enhancer", "{faces}", "-o", "{faces}", "--overwrite"], "train-enhancer -o its own dataset", ""),
    (["train-enhancer", "{faces}", "-o", "{da}", "--overwrite"], "train-enhancer -o a dataset", ""),
    (["train-enhancer", "{faces}", "-o", "{run}", "--overwrite"], "train-enhancer -o a run", ""),
    (["train-enhancer", "{faces}", "-o", ".", "--overwrite"], "train-enhancer -o the folder holding inputs", ""),
    (
        ["train-enhancer", "{faces}", "-o", "e2", "--lr", "1e30", "--steps", "20", "--patch", "32"],
        "enhancer lr 1e30",
        "",
    ),
    (["train-enhancer", "{faces}", "-o", "e3", "--batch-size", "100000"], "enhancer batch far out of reach", ""),
    (["train-enhancer", "{da}", "-o", "e4"], "enhancer on a whole-frame dataset", ""),
    (["train", "{da}", "{da}", "-o", "r2"], "train the same dataset twice", ""),
    (["train", "{da}", "{db}", "-o", "{da}", "--overwrite"], "train -o an input dataset", ""),
    (["train", "{da}", "{db}", "-o", "data", "--overwrite"], "train -o the folder holding inputs", ""),
    (["train", "{da}", "{db}", "-o", "{da}/run"], "train -o inside a dataset", ""),
    (["train", "{da}", "{db}", "-o", "{enh}", "--overwrite"], "train -o an enhancer", ""),
    (["train", "{da}", "{db}", "-o", "{faces}", "--overwrite"], "train -o another dataset", ""),
    (["train", "{da}", "{db}", "-o", "r3", "--size", "100000"], "train --size far out of reach", ""),
    (["train", "{da}", "{db}", "-o", "r4", "--ngf", "100000"], "train --ngf far out of reach", ""),
    (["train", "{da}", "{db}", "-o", "r5", "--batch-size", "100000"], "train --batch-size far out of reach", ""),
    (["train", "{da}", "{db}", "-o", "r6", "--model", "cyclegan", "--warp", "5"], "cyclegan --warp", ""),
    (["train", "{da}", "{db}", "-o", "r7", "--steps", "2", "--decay-from", "50"], "--decay-from past --steps", ""),
    (
        ["train", "{odd}", "{db}", "-o", "r8", "--preset", "tiny", "--size", "16", "--steps", "1"],
        "non-UTF-8 path",
        "r8",
    ),
    (["train", "--resume", "{badcfg}"], "resume a config with a wrong type", ""),
    (["train", "--resume", "{broken}"], "resume a truncated checkpoint", ""),
    (["train", "--resume", "{run}", "--steps", "1"], "resume with --steps below the run's step", ""),
    (["train", "--resume", "{da}"], "resume a dataset", ""),
    (["train", "--resume", "{video}"], "resume a video", ""),
    (["render", "{video}", "{video}", "-m", "{run}", "--overwrite"], "render over its input", ""),
    (["render", "{video}", "{da}", "-m", "{run}", "--overwrite"], "render -o a dataset", ""),
    (["render", "{video}", "{run}/o.mp4", "-m", "{run}"], "render into the run it renders with", ""),
    (["render", "{video}", "-o", "{run}", "-m", "{run}"], "batch render into the run it renders with", ""),
    (["extract", "{video}", "-o", "{web}", "--overwrite"], "extract --overwrite a web app's folder", ""),
    (["extract", "{video}", "-o", "{mine}", "--overwrite"], "extract --overwrite a dataset with a user file", ""),
    (["export", "{run}", "-o", "x.onnx", "--opset", "999"], "export an opset past torch's", ""),
    (["render", "{video}", "o.mp4", "-m", "{run}", "--align", "face"], "render --align face, no face", ""),
    (["render", "{video}", "o.mp4", "-m", "{run}", "--mask", "ellipse"], "--mask on a whole-frame render", ""),
    (["render", "{video}", "o.mp4", "-m", "{run}", "--blend", "seamless"], "--blend on a whole-frame render", ""),
    (["render", "{video}", "o.mp4", "-m", "{broken}"], "render a truncated checkpoint", ""),
    (["render", "{video}", "o.mp4", "-m", "{badcfg}"], "render a run with a wrong-typed config", ""),
    (["render", "{video}", "o.mp4", "-m", "{run}", "--scale", "100000"], "render --scale far out of reach", ""),
    (["render", "{video}", "o.mp4", "--target-faces", "{faces}", "-m", "{run}"], "swap with a run", ""),
    (["render", "{video}", "o.mp4", "--target-faces", "{da}"], "swap with a whole-frame dataset", ""),
    (["render", "{still}", "o.mp4", "-m", "{run}"], "render a still image", ""),
    (["eval", "{still}", "--source", "{video}"], "eval a still image", ""),
    (["eval", "{video}", "--source", "{video2}", "--per-frame"], "eval --per-frame without --json", ""),
    (["eval", "{video}", "--source", "{video2}", "--face-backend", "fan"], "eval --face-backend without --faces", ""),
    (["runs", ""], "runs of an empty path", ""),
    (["runs", "{video}"], "runs of a file", ""),
    (["demo", "-o", "{da}", "--steps", "2"], "demo over a dataset (it overwrites by default)", ""),
    (["demo", "-o", "{run}", "--steps", "2"], "demo over a run", ""),
    (["demo", "-o", "{video}/x", "--steps", "2"], "demo -o under a file", ""),
    (["extract", "{video}", "-o", "{video}/x"], "extract -o under a file", ""),
    (["train", "{da}", "{db}", "-o", "{video}/x"], "train -o under a file", ""),
    (["train-enhancer", "{faces}", "-o", "{video}/x"], "train-enhancer -o under a file", ""),
    (["render", "{video}", "{video}/x.mp4", "-m", "{run}"], "render -o under a file", ""),
    (["extract", "{video}", "-o", ""], "extract -o empty", ""),
    (["train", "{da}", "{db}", "-o", ""], "train -o empty", ""),
]


def all_cases(root: Path) -> list[dict[str, Any]]:
    """Every case, numbered: the generated ones, then the combinations."""
    del root  # the cases name fixtures relative to the folder they run in
    rows = [*generated_cases(), *COMBINATIONS]
    return [{"id": i, "argv": argv, "why": why, "product": product} for i, (argv, why, product) in enumerate(rows)]
