"""Self-reenactment benchmark: a person's held-out end driven by their own earlier frames, with ground truth.

    python benchmarks/faces_self.py                                   # the five people, the swap's defaults
    python benchmarks/faces_self.py --systems swap swap+stabilize=0 swap+mouth=source
    python benchmarks/faces_self.py --people d18 --systems "swap+refiner=600"
    python benchmarks/faces.py --self ...                             # the same

The standard evaluation of FOMM, TPSMM and LivePortrait. For each person P (``--people``,
videos of ``--data``: ``talk_<name>.mp4``), the video is split at ``1 - --holdout`` of its
duration: the first part is extracted as P's face dataset (``retarget extract --align
face --size S --margin M``), the held-out end is written as a clip at its own
resolution. Every system renders the clip with ``--target-faces`` = P's first part, as
the swap would drive P's frames from another person's; the output is scored against the
clip itself (retarget/eval/reenact.py, dlib landmarks on the truth): face-region PSNR and
SSIM, landmark distance (% of the inter-ocular distance), sharpness ratio, warping-error
ratio (flow on the truth), the share of frames where the output's face was found.

Systems: ``swap`` (render's defaults) and ``swap+field=value,...`` setting RenderConfig
fields (``swap+stabilize=0``, ``swap+mouth=source``); ``refiner=SECONDS`` trains a
refiner on P's first part for that long first (cached in the work folder) and renders
with it. The row "input unchanged" scores the clip against itself (a sanity check:
PSNR at its cap, distance 0, ratios 1). Datasets and clips stay in ``--work`` and are
reused; a (person, system) already in ``OUT/results.json`` is reused unless ``--force``
(``--rescore`` scores the renders again). Writes ``OUT/results.md``, ``OUT/results.json``
and a strip JPG per person and system (truth | output, a row per time point, at the
video's own resolution around the face).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import sys
import time
from pathlib import Path
from typing import Any, Optional

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import environment  # noqa: E402

import cv2  # noqa: E402
import numpy as np  # noqa: E402

import faces  # noqa: E402

DEFAULT_PEOPLE = ("d3", "d9", "d12", "d18", "d19")
REFERENCE = "input unchanged"
#: Per row of the table: JSON key, column title, digits (None: a share shown in %).
COLUMNS = (
    ("psnr", "face PSNR", 2),
    ("ssim", "SSIM", 3),
    ("landmark", "lmk dist %", 2),
    ("sharpness", "sharp", 3),
    ("warp_ratio", "warp ratio", 2),
    ("found_share", "faces found", None),
    ("render_s", "render s", 0),
)


@dataclasses.dataclass(frozen=True)
class Person:
    """One person's split on disk."""

    name: str
    video: str
    dataset: str  # the first part, extracted (the swap's --target-faces)
    clip: str  # the held-out end, at the video's resolution (the truth)
    info: dict[str, Any]


def prepare_person(name: str, data: Path, holdout: float, size: int, margin: float, work: Path) -> Person:
    """Extract the first ``1 - holdout`` of ``name``'s video and write its end as a clip (reused when done)."""
    from retarget.config import ExtractConfig, FaceConfig
    from retarget.dataset.extract import extract
    from retarget.progress import console
    from retarget.video.reader import probe

    video = faces.find_video(name, data)
    root = work / f"{video.stem}_h{holdout:g}_{size}px_m{margin:g}"
    done = root / "person.json"
    dataset, clip = root / "faces", root / "clip.mp4"
    if done.exists() and (dataset / "manifest.json").exists() and clip.exists():
        return Person(name, str(video), str(dataset), str(clip), json.loads(done.read_text()))
    root.mkdir(parents=True, exist_ok=True)
    split = probe(video).duration * (1.0 - holdout)
    cfg = ExtractConfig(videos=(str(video),), output=str(dataset), size=size, align="face",
                        face=FaceConfig(margin=margin), end=split, overwrite=True)  # fmt: skip
    with console.capture():
        summary = extract(cfg)
    frames = faces.write_clip(video, split, clip)
    info = {"video": video.name, "split_s": round(split, 3), "clip_frames": frames, "faces": summary.frames_written}
    done.write_text(json.dumps(info))
    return Person(name, str(video), str(dataset), str(clip), info)


# -- systems ------------------------------------------------------------------------------------


def _value(default: Any, raw: str) -> Any:
    """``raw`` typed: a bool for a bool field, else an int, a float (for a float field too) or the string."""
    if isinstance(default, bool):
        return raw.lower() in ("1", "true", "yes", "on")
    for cast in (int, float):
        try:
            value = cast(raw)
        except ValueError:
            continue
        return float(value) if isinstance(default, float) else value
    return raw


def parse_system(spec: str) -> tuple[dict[str, Any], Optional[float]]:
    """``swap[+field=value,...]`` -> (RenderConfig overrides, refiner training seconds or None).

    Raises:
        SystemExit: not a swap, an unknown or reserved field, a malformed pair.
    """
    from retarget.config import RenderConfig

    head, _, tail = spec.partition("+")
    if head != "swap":
        raise SystemExit(f"system {spec!r}: write swap or swap+field=value,...")
    fields = {f.name: f.default for f in dataclasses.fields(RenderConfig)}
    overrides: dict[str, Any] = {}
    refiner = None
    for item in filter(None, tail.split(",")):
        key, eq, raw = item.partition("=")
        if not eq:
            raise SystemExit(f"system {spec!r}: {item!r} is not field=value")
        if key == "refiner":
            refiner = float(raw)
        elif key in ("input", "output", "target_faces", "overwrite") or key not in fields:
            raise SystemExit(f"system {spec!r}: no render option {key!r} to set here")
        else:
            overrides[key] = _value(fields[key], raw)
    return overrides, refiner


def trained_refiner(person: Person, seconds: float, threads: int) -> tuple[str, float]:
    """A refiner trained ``seconds`` on the person's first part (cached next to it); (folder, training s)."""
    from retarget.config import RefinerConfig  # the refiner's API: imported only when a system asks for it
    from retarget.progress import console
    from retarget.train.refiner import train_refiner

    done = Path(person.dataset).parent / f"refiner_{seconds:g}s.json"
    if done.exists():
        cached = json.loads(done.read_text())
        if Path(cached["out"]).exists():
            return cached["out"], cached["seconds"]
    t0 = time.perf_counter()
    out = Path(person.dataset).parent / f"refiner_{seconds:g}s"
    with console.capture():
        res = train_refiner(
            RefinerConfig(data=person.dataset, out=str(out), time_limit=seconds, overwrite=True, threads=threads)
        )
    cached = {"out": str(res.out), "seconds": time.perf_counter() - t0}
    done.write_text(json.dumps(cached))
    return cached["out"], cached["seconds"]


def render_system(person: Person, spec: str, render_to: Path, threads: int) -> dict[str, Any]:
    """Render the person's clip with their own first part as ``--target-faces``; the seconds taken."""
    from retarget.config import RenderConfig
    from retarget.progress import console
    from retarget.render.render import render

    overrides, seconds = parse_system(spec)
    row: dict[str, Any] = {}
    if seconds is not None:
        overrides["refiner"], row["refiner_s"] = trained_refiner(person, seconds, threads)
    t0 = time.perf_counter()
    with console.capture():
        render(RenderConfig(input=person.clip, output=str(render_to), target_faces=person.dataset,
                            overwrite=True, **overrides))  # fmt: skip
    row["render_s"] = time.perf_counter() - t0
    return row


def score(output: str, clip: str) -> dict[str, Any]:
    """reenact.py's scores of ``output`` against ``clip`` as a flat row (``frame_counts`` too)."""
    from retarget.eval.reenact import score_videos

    t0 = time.perf_counter()
    scores, counts = score_videos(output, clip)
    return {**scores.to_dict(), "frame_counts": counts, "score_s": time.perf_counter() - t0}


# -- strips and the table --------------------------------------------------------------------


def _native_crop(image: np.ndarray, centre: np.ndarray, side: int) -> np.ndarray:
    """The ``side`` px square of ``image`` about ``centre`` (x, y), moved inside the frame where it fits;
    pixels as they are (black outside the frame)."""
    h, w = image.shape[:2]
    x0 = int(np.clip(round(centre[0] - side / 2), min(0, w - side), max(0, w - side)))
    y0 = int(np.clip(round(centre[1] - side / 2), min(0, h - side), max(0, h - side)))
    m = np.array([[1.0, 0.0, -x0], [0.0, 1.0, -y0]])
    return cv2.warpAffine(image, m, (side, side), flags=cv2.INTER_NEAREST, borderMode=cv2.BORDER_CONSTANT)


def write_strip(clip: str, output: str, path: Path, labels: tuple[str, str], points: int) -> None:
    """Rows of [truth | output] at ``points`` times of the clip, at the video's resolution, around the
    truth's face (1.8 x the largest face box found), under a header row; a JPG."""
    from retarget.eval.faces import FaceComparer
    from retarget.faces.backends import get_backend

    comparer = FaceComparer(get_backend("dlib"))
    truths, outputs = faces._pick(clip, points), faces._pick(output, points)
    boxes = [found[0] if found else None for found in map(comparer.face, truths)]
    found = [b for b in boxes if b is not None]
    h, w = truths[0].shape[:2]
    side = min(h, w, int(1.8 * max((max(b[2] - b[0], b[3] - b[1]) for b in found), default=min(h, w))))
    rows = []
    for truth, out, box in zip(truths, outputs, boxes):
        centre = np.array([w / 2, h / 2]) if box is None else np.array([box[0] + box[2], box[1] + box[3]]) / 2
        out = cv2.resize(out, (w, h)) if out.shape != truth.shape else out
        rows.append(np.hstack([_native_crop(truth, centre, side), _native_crop(out, centre, side)]))
    header = np.full((28, 2 * side, 3), 255, np.uint8)
    for i, text in enumerate(labels):
        cv2.putText(header, text[: side // 9], (i * side + 6, 19), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (0, 0, 0), 1)
    cv2.imwrite(str(path), cv2.cvtColor(np.vstack([header, *rows]), cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 92])


def with_means(results: dict[str, dict[str, dict[str, Any]]], systems: list[str]) -> list[tuple[list[str], dict]]:
    """Table rows: every (person, system) in order, then a "mean" row per system over its people."""
    rows = [([person, name], row) for person, by in results.items() for name, row in by.items()]
    for name in systems:
        runs = [by[name] for by in results.values() if name in by]
        if len(runs) < 2:
            continue
        mean: dict[str, Any] = {}
        for key, _, _ in COLUMNS:
            vals = [r[key] for r in runs if isinstance(r.get(key), (int, float)) and math.isfinite(r[key])]
            mean[key] = float(np.mean(vals)) if vals else None
        rows.append(([f"mean of {len(runs)}", name], mean))
    return rows


def table_lines(results: dict[str, dict[str, dict[str, Any]]], systems: list[str]) -> list[str]:
    """A Markdown table: person x system rows, then the means per system."""
    return faces.markdown_table(["person", "system"], with_means(results, systems), COLUMNS)


# -- the run ------------------------------------------------------------------------------------


def run_person(args: argparse.Namespace, person: Person, out: Path, done: dict[str, Any]) -> dict[str, Any]:
    """Render, score and draw every system for one person; ``done``: their rows from an earlier run."""
    rows: dict[str, Any] = {}
    systems = ([REFERENCE] if args.reference else []) + args.systems
    for spec in systems:
        render_to = out / f"{person.name}_{spec.replace('+', '_').replace('=', '-').replace(',', '_')}.mp4"
        again = args.force or (args.rescore and spec != REFERENCE)
        if spec in done and not again:
            rows[spec] = done[spec]
            continue
        if spec == REFERENCE:
            row: dict[str, Any] = {"render_s": 0.0}
        elif args.rescore and not args.force and render_to.exists():
            row = {k: v for k, v in done.get(spec, {}).items() if k in ("render_s", "refiner_s")}
        else:
            row = render_system(person, spec, render_to, args.threads)
        output = person.clip if spec == REFERENCE else str(render_to)
        row.update(score(output, person.clip))
        if spec != REFERENCE:
            strip = render_to.with_suffix(".jpg")
            write_strip(person.clip, output, strip, (f"truth ({person.name})", f"output: {spec}"), args.points)
        rows[spec] = row
        print(f"{person.name} {spec}: " + ", ".join(f"{k}={v}" for k, v in row.items()), flush=True)
    return rows


def parse_args(argv: Optional[list[str]]) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--people", nargs="+", default=list(DEFAULT_PEOPLE), help="video names (default: %(default)s)")
    ap.add_argument("--data", default=str(faces.DEFAULT_DATA), help="folder of the videos (default: %(default)s)")
    ap.add_argument("--systems", nargs="+", default=["swap"], help="swap[+field=value,...] (refiner=SECONDS)")
    ap.add_argument("--holdout", type=float, default=0.2, help="share of each video (its end) held out")
    ap.add_argument("--size", type=int, default=256, help="face crop size of the dataset (extract --size)")
    ap.add_argument("--margin", type=float, default=0.2, help="border around the face (extract --margin)")
    ap.add_argument("--threads", type=int, default=1, help="torch and OpenCV threads")
    ap.add_argument("--points", type=int, default=4, help="time points (rows) of each strip")
    ap.add_argument("--out", default="faces_self", help="renders, strips and results go here")
    ap.add_argument("--work", help="datasets and clips, reused when present (default: OUT/work)")
    ap.add_argument("--no-reference", dest="reference", action="store_false", help="leave out 'input unchanged'")
    ap.add_argument("--rescore", action="store_true", help="score the existing renders again")
    ap.add_argument("--force", action="store_true", help="render and score again what results.json holds")
    args = ap.parse_args(argv)
    for spec in args.systems:
        parse_system(spec)  # fail early on a typo
    if not 0 < args.holdout < 1:
        raise SystemExit("--holdout must lie between 0 and 1")
    return args


def main(argv: Optional[list[str]] = None) -> None:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    import torch

    torch.set_num_threads(args.threads)
    cv2.setNumThreads(args.threads)
    out = Path(args.out)
    work = Path(args.work) if args.work else out / "work"
    work.mkdir(parents=True, exist_ok=True)
    env = environment(args.threads)
    print(env, flush=True)
    report_path = out / "results.json"
    old = json.loads(report_path.read_text()) if report_path.exists() else {}
    settings = {k: getattr(args, k) for k in ("holdout", "size", "margin")}
    if old and any(old["info"].get(k) != v for k, v in settings.items()):
        print(f"{report_path}: other settings than {settings}; its results are not reused", flush=True)
        old = {}
    results: dict[str, Any] = old.get("results", {})
    people: dict[str, Any] = old.get("people", {})
    for name in args.people:
        person = prepare_person(name, Path(args.data), args.holdout, args.size, args.margin, work)
        people[name] = person.info
        results[name] = {**results.get(name, {}), **run_person(args, person, out, results.get(name, {}))}
        info = {**settings, "threads": args.threads, "environment": env}
        report = {"info": info, "people": people, "results": results}
        report_path.write_text(json.dumps(report, indent=2, allow_nan=False) + "\n")  # after every person
    shown = {p: {s: results[p][s] for s in [REFERENCE, *args.systems] if s in results[p]} for p in args.people}
    title = f"self-reenactment, holdout {args.holdout:g}, faces at {args.size} px margin {args.margin:g}"
    clips = [f"{p}: {i['video']} held out from {i['split_s']} s, {i['clip_frames']} frames, "
             f"{i['faces']} faces in the first part" for p, i in people.items() if p in args.people]  # fmt: skip
    lines = [title, "", *table_lines(shown, [REFERENCE, *args.systems]), "", *clips, env]
    print("\n".join(lines))
    (out / "results.md").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
