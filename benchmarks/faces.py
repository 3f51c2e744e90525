"""Face benchmark: one person's talking head turned into another's, at a wall-clock budget.

    python benchmarks/faces.py                                            # 3 pairs, default and cyclegan 20 min, swap
    python benchmarks/faces.py --pairs d18:d19 --systems default "recycle+identity=2,ngf=32" --time-limit 3600
    python benchmarks/faces.py --pairs d18:d19 --time-limit 60 --preset tiny --out faces_smoke   # a quick check

Pairs ``A:B`` name videos of ``--data`` (default ../shared/data/faces: ``talk_<name>.mp4``;
the ``talk_`` prefix may be left out). For each pair:

* ``retarget extract --align face --size S`` of A *without* its last ``--holdout`` share
  (by time; 0.2 = the last 20%) and of the whole of B;
* the held-out part of A is written as a clip at its own resolution: no model sees it;
* every system trains for ``--time-limit`` seconds (``retarget train --time-limit``),
  then ``retarget render`` translates the clip (faces pasted back, the default
  stabilizer), inside the same worker process;
* ``retarget eval OUTPUT --source CLIP --faces --target B_VIDEO`` scores the render
  (docs/eval.md): the share of output faces nearer B than A, the share within dlib's
  same-person distance 0.6 of B, the mean distances to B and A, the mouth and eye
  correlations with the source, the face sharpness ratio, the warping-error ratio;
* a strip PNG per pair, system and seed in ``--out``: a row per time point of the clip,
  columns source | output | a frame of B, cropped around the face.

``swap`` (or ``swap=SIZE``) is the face swap with no training (``retarget render
--target-faces``): B extracted at SIZE px (default 256) with the pair's margin, then the
clip rendered with it; its "train s" is the extract's time. Trained systems are
``MODEL[+field=value,...]`` (benchmarks/common.py :func:`parse_system`):
``default`` (= ``recycle``, what ``retarget train`` builds), ``cyclegan``, and overrides
of ModelConfig, LossConfig or TrainConfig fields, e.g. ``recycle+identity=2,ngf=32``
or ``default+preset=tiny,size=48``. All systems of one pair and seed train at the same
time, each in its own process with ``--threads`` torch threads (default 1), so they see
the same load: equal budget is equal time (``--sequential`` trains them one by one).
Two reference rows come first: "input unchanged" scores the clip as its own output
(A's identity, where every system starts), and "input at S px" the clip with its face
brought down to the training resolution and back up (a perfect model at S px: how far
the loss of detail alone moves the identity; a blurred face drifts towards everyone).
The table is printed and written, as Markdown, to ``OUT/results.md``; everything to
``OUT/results.json``. ``--self`` runs benchmarks/faces_self.py instead (each person driven by
their own earlier frames, scored against the real held-out frames), with its options.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import sys
import time
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any, Optional

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import ROOT, budget_config, environment, parse_system, run_workers, summarise  # noqa: E402

import cv2  # noqa: E402
import numpy as np  # noqa: E402

from retarget.config import FaceConfig  # noqa: E402

DEFAULT_DATA = ROOT.parent / "shared" / "data" / "faces"
#: A's held-out end moves its mouth (opening sd 0.06-0.09; d18's and d9's are nearly still),
#: and no B looks like its A to dlib (d12 and d9 lie 0.56 apart: avoid that pair).
DEFAULT_PAIRS = ("d19:d18", "d3:d9", "d12:d19")
#: the face options' default margin around the landmark template
MARGIN = FaceConfig.margin
#: width of dlib's face box per unit of the template's face size (0.6 of a crop at margin 0.4)
BOX_PER_FACE = 1.08
#: Per row of the table: JSON key, column title, digits (None: a share shown in %).
COLUMNS = (
    ("found", "faces found", None),
    ("nearer_b", "nearer B", None),
    ("same_person_b", "B < 0.6", None),
    ("distance_b", "dist B", 3),
    ("distance_a", "dist A", 3),
    ("mouth_r", "mouth r", 2),
    ("eye_r", "eye r", 2),
    ("gaze_r", "gaze r", 2),
    ("sharpness", "sharp", 3),
    ("warp_ratio", "warp ratio", 2),
    ("steps", "steps", 0),
    ("train_s", "train s", 0),
)


# -- the pair -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Pair:
    """One A:B instance on disk."""

    name: str  # "A:B"
    a_video: str
    b_video: str
    a_dir: str  # A's training dataset (without the held-out part)
    b_dir: str  # B's dataset
    clip: str  # the held-out part of A, at A's resolution
    info: dict[str, Any]


def find_video(name: str, data: Path) -> Path:
    """``data/talk_<name>.mp4``, ``data/<name>.mp4`` or ``data/<name>`` (SystemExit if none exists)."""
    for cand in (data / f"talk_{name}.mp4", data / f"{name}.mp4", data / name):
        if cand.is_file():
            return cand
    raise SystemExit(f"no video for {name!r} in {data}")


def write_clip(video: Path, start: float, path: Path) -> int:
    """Write the frames of ``video`` from ``start`` seconds on to ``path`` (H.264, crf 12); returns their count."""
    from retarget.video.reader import VideoReader
    from retarget.video.writer import VideoWriter

    with VideoReader(video, start=start) as reader:
        info, first, n = reader.info, None, 0
        with VideoWriter(path, info.width, info.height, Fraction(info.time_base), info.fps, crf=12) as writer:
            for frame in reader:
                first = frame.pts if first is None else first
                writer.write(frame.image, pts=None if frame.pts is None or first is None else frame.pts - first)
                n += 1
    return n


def prepare_pair(spec: str, data: Path, size: int, holdout: float, work: Path, margin: float = MARGIN) -> Pair:
    """Extract A's training part and B at ``size`` px (face-aligned, ``margin`` around the face) and write
    A's held-out clip."""
    from retarget.config import ExtractConfig, FaceConfig
    from retarget.dataset.extract import extract
    from retarget.progress import console
    from retarget.video.reader import probe

    a_name, _, b_name = spec.partition(":")
    if not a_name or not b_name:
        raise SystemExit(f"pair {spec!r}: write it as A:B, e.g. d18:d19")
    a_video, b_video = find_video(a_name, data), find_video(b_name, data)
    split = probe(a_video).duration * (1.0 - holdout)
    root = work / spec.replace(":", "-")
    root.mkdir(parents=True, exist_ok=True)
    summaries = {}
    with console.capture():
        for role, video, end in (("A", a_video, split), ("B", b_video, None)):
            cfg = ExtractConfig(
                videos=(str(video),),
                output=str(root / role),
                size=size,
                align="face",
                face=FaceConfig(margin=margin),
                end=end,
                overwrite=True,
            )
            summaries[role] = extract(cfg)
    clip_frames = write_clip(a_video, split, root / "clip.mp4")
    info = {
        "a": a_video.name,
        "b": b_video.name,
        "split_s": round(split, 3),
        "clip_frames": clip_frames,
        "a_frames": summaries["A"].frames_written,
        "b_frames": summaries["B"].frames_written,
    }
    return Pair(spec, str(a_video), str(b_video), str(root / "A"), str(root / "B"), str(root / "clip.mp4"), info)


# -- training and rendering (one worker per system) --------------------------------------------


def train_and_render(
    spec: str,
    preset: str,
    size: int,
    a_dir: str,
    b_dir: str,
    out: str,
    seed: int,
    budget: float,
    threads: int,
    clip: str,
    render_to: str,
) -> dict[str, Any]:
    """Train one system for ``budget`` seconds, then render ``clip`` into ``render_to`` with it."""
    import torch

    from retarget.config import RenderConfig
    from retarget.progress import console
    from retarget.render.render import render
    from retarget.train import train

    torch.set_num_threads(threads)
    cfg = budget_config(spec, preset, size, a_dir, b_dir, out, seed, budget, threads)
    t0 = time.perf_counter()
    with console.capture():
        result = train(cfg)
        seconds = time.perf_counter() - t0
        r0 = time.perf_counter()
        render(RenderConfig(input=clip, output=render_to, model=str(result.run_dir), device="cpu", overwrite=True))
    return {"steps": result.steps, "train_s": seconds, "render_s": time.perf_counter() - r0}


def swap_size(spec: str) -> Optional[int]:
    """The crop size of a ``swap`` / ``swap=SIZE`` system (256 by default), None for a trained system."""
    if spec == "swap":
        return 256
    if spec.startswith("swap="):
        return int(spec.split("=", 1)[1])
    return None


def swap_and_render(pair: Pair, size: int, margin: float, clip: str, render_to: str, work: Path) -> dict[str, Any]:
    """The ``swap`` system: extract B at ``size`` px (reused when done), render ``clip`` with ``--target-faces``."""
    from retarget.config import ExtractConfig, FaceConfig, RenderConfig
    from retarget.dataset.extract import extract
    from retarget.progress import console
    from retarget.render.render import render

    faces = work / f"{Path(pair.b_video).stem}_{size}px_m{margin:g}"
    t0 = time.perf_counter()
    with console.capture():
        if not (faces / "manifest.json").exists():
            extract(ExtractConfig(videos=(pair.b_video,), output=str(faces), size=size, align="face",
                                  face=FaceConfig(margin=margin), overwrite=True))  # fmt: skip
        seconds = time.perf_counter() - t0
        r0 = time.perf_counter()
        render(RenderConfig(input=clip, output=render_to, target_faces=str(faces), overwrite=True))
    return {"train_s": seconds, "render_s": time.perf_counter() - r0}


def worker(spec_file: str) -> None:
    """Entry of one ``--worker`` process: train, render, write the result JSON."""
    job = json.loads(Path(spec_file).read_text())
    result = job.pop("result")
    Path(result).write_text(json.dumps(train_and_render(**job)))


# -- scoring and strips -----------------------------------------------------------------------


def score(output: str, clip: str, target: Any) -> dict[str, Any]:
    """``retarget eval OUTPUT --source CLIP --faces --target B`` as a flat row of the table."""
    from retarget.config import EvalConfig
    from retarget.eval.evaluate import evaluate
    from retarget.progress import console

    with console.capture():
        res = evaluate(EvalConfig(output=output, source=clip, faces=True, target=target.path), target=target)
    s = res.scores
    f, w = s["faces"], s["warping_error"] or {}
    ident, expr = f["identity"], f["expression"]
    return {
        "found": ident["frames"] / max(1, s["frames"]),  # frames whose output face was found and described
        "nearer_b": ident["nearer_b"],
        "same_person_b": ident["same_person_b"],
        "distance_b": ident["distance_b"],
        "distance_a": ident["distance_a"],
        "mouth_r": expr["mouth_correlation"],
        "eye_r": expr["eye_correlation"],
        "gaze_r": expr.get("gaze_correlation"),
        "gaze_moves": _share(expr.get("gaze_output_sd"), expr.get("gaze_source_sd")),
        "mouth_source_sd": expr["mouth_source_sd"],
        "sharpness": f["sharpness"]["ratio"],
        "warp_ratio": w.get("ratio"),
        "eval_s": res.seconds,
    }


def _share(part: Optional[float], whole: Optional[float]) -> Optional[float]:
    return None if part is None or whole is None or whole <= 1e-9 else part / whole


def write_low_resolution(clip: str, size: int, path: Path, margin: float = MARGIN) -> None:
    """The clip with its face brought to ``size`` px and back: what a perfect model at ``size`` px could show.

    In an aligned crop of ``size`` px the detector's face box is about ``1.08 / (1 + 2 *
    margin)`` of ``size`` wide (0.6 at margin 0.4); each frame is scaled by that width over
    the box's (the box of the clip's first face) with an area filter and back with a
    bicubic one.
    """
    from retarget.eval.faces import FaceComparer
    from retarget.faces.backends import get_backend
    from retarget.video.reader import VideoReader
    from retarget.video.writer import VideoWriter

    comparer = FaceComparer(get_backend("dlib"))
    scale = None
    with VideoReader(clip) as reader:
        info = reader.info
        with VideoWriter(path, info.width, info.height, Fraction(info.time_base), info.fps, crf=12) as writer:
            for frame in reader:
                if scale is None:
                    found = comparer.face(frame.image)
                    box = BOX_PER_FACE * size / (1.0 + 2.0 * margin)
                    scale = min(1.0, box / (found[0][2] - found[0][0])) if found else 1.0
                small = cv2.resize(frame.image, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
                back = cv2.resize(small, (info.width, info.height), interpolation=cv2.INTER_CUBIC)
                writer.write(back, pts=frame.pts)


def _pick(video: str, count: int) -> list[np.ndarray]:
    """``count`` frames of ``video`` evenly spaced over it (decoded in one pass)."""
    from retarget.video.reader import VideoReader, probe

    total = probe(video).frame_count or 1
    wanted = set(np.linspace(0, total - 1, count).round().astype(int).tolist())
    with VideoReader(video) as reader:
        frames = [f.image for i, f in enumerate(reader) if i in wanted]
    return frames[:count]


def _crop(image: np.ndarray, box: Optional[np.ndarray], tile: int) -> np.ndarray:
    """A square ``tile`` px view of ``image`` around ``box`` (1.8 x its size; the centre without a box)."""
    h, w = image.shape[:2]
    if box is None:
        cx, cy, side = w / 2, h / 2, min(h, w)
    else:
        cx, cy, side = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2, 1.8 * max(box[2] - box[0], box[3] - box[1])
    m = np.array([[tile / side, 0, tile / 2 - cx * tile / side], [0, tile / side, tile / 2 - cy * tile / side]])
    return cv2.warpAffine(image, m, (tile, tile), flags=cv2.INTER_AREA, borderMode=cv2.BORDER_CONSTANT)


def write_strip(
    clip: str, output: str, b_video: str, path: Path, labels: tuple[str, str, str], points: int, tile: int
) -> None:
    """Rows of [source | output | B] at ``points`` times of the clip, cropped around the face; a header row."""
    from retarget.eval.faces import FaceComparer
    from retarget.faces.backends import get_backend

    comparer = FaceComparer(get_backend("dlib"))
    rows = []
    for src, out, b in zip(_pick(clip, points), _pick(output, points), _pick(b_video, points)):
        found, b_found = comparer.face(src), comparer.face(b)
        box = found[0] if found is not None else None
        out = cv2.resize(out, (src.shape[1], src.shape[0])) if out.shape != src.shape else out
        rows.append(
            np.hstack([_crop(src, box, tile), _crop(out, box, tile), _crop(b, b_found[0] if b_found else None, tile)])
        )
    header = np.full((28, 3 * tile, 3), 255, np.uint8)
    for i, text in enumerate(labels):
        cv2.putText(header, text[:28], (i * tile + 6, 19), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (0, 0, 0), 1, cv2.LINE_AA)
    cv2.imwrite(str(path), cv2.cvtColor(np.vstack([header, *rows]), cv2.COLOR_RGB2BGR))


# -- report ---------------------------------------------------------------------------------------


def cell(s: dict[str, Any], key: str, digits: Optional[int]) -> str:
    """``s[key]`` as a table cell: a share in % (``digits`` None) or a number, ``± sd`` when
    ``s`` holds ``key + "_sd"``, ``-`` when missing or not finite."""
    v = s.get(key)
    if v is None or not math.isfinite(v):
        return "-"
    sd = s.get(key + "_sd") or 0.0
    if digits is None:
        return f"{100 * v:.0f}%" + (f" ± {100 * sd:.0f}" if sd else "")
    return f"{v:.{digits}f}" + (f" ± {sd:.{digits}f}" if sd else "")


def pick(*keys: str) -> tuple[tuple[str, str, Optional[int]], ...]:
    """The :data:`COLUMNS` named by ``keys``, in that order (for the benchmarks that show fewer)."""
    by_key = {c[0]: c for c in COLUMNS}
    return tuple(by_key[k] for k in keys)


def markdown_table(
    heads: list[str], rows: list[tuple[list[str], dict[str, Any]]], columns: tuple = COLUMNS
) -> list[str]:
    """Markdown lines: ``heads`` then the ``columns`` titles; each row its labels then its cells."""
    lines = ["| " + " | ".join([*heads, *(name for _, name, _ in columns)]) + " |"]
    lines.append("|" + "---|" * len(heads) + "---:|" * len(columns))
    for labels, s in rows:
        lines.append("| " + " | ".join([*labels, *(cell(s, k, d) for k, _, d in columns)]) + " |")
    return lines


def table_lines(results: dict[str, dict[str, Any]]) -> list[str]:
    """A Markdown table: one row per pair and system (mean ± sd over seeds)."""
    rows = [([pair, name], s) for pair, systems in results.items() for name, s in systems.items()]
    return markdown_table(["pair", "system"], rows)


def _jobs(args: argparse.Namespace, pair: Pair, seed: int, out: Path, work: Path) -> list[dict[str, Any]]:
    """One training job per trained system (swaps are not trained)."""
    tag = pair.name.replace(":", "-")
    return [
        dict(
            spec=spec,
            preset=args.preset,
            size=args.size,
            a_dir=pair.a_dir,
            b_dir=pair.b_dir,
            out=str(work / tag / f"run_{i}_{seed}"),
            seed=seed,
            budget=args.time_limit,
            threads=args.threads,
            clip=pair.clip,
            render_to=str(out / f"{tag}_{i}_seed{seed}.mp4"),
        )
        for i, spec in enumerate(args.systems)
        if swap_size(spec) is None
    ]


def run_pair(args: argparse.Namespace, pair: Pair, out: Path, work: Path) -> dict[str, dict[str, Any]]:
    """Train, render, score and draw every system of one pair; returns the summary per system."""
    from retarget.eval.faces import FaceComparer
    from retarget.eval.identity import get_descriptor, target_faces
    from retarget.faces.backends import get_backend

    target = target_faces(pair.b_video, FaceComparer(get_backend("dlib")), get_descriptor())
    low = work / pair.name.replace(":", "-") / f"clip_{args.size}px.mp4"
    write_low_resolution(pair.clip, args.size, low, args.margin)
    rows: dict[str, list[dict[str, Any]]] = {
        "input unchanged": [score(pair.clip, pair.clip, target)],
        f"input at {args.size} px": [score(str(low), pair.clip, target)],
    }
    pair.info["mouth_source_sd"] = rows["input unchanged"][0]["mouth_source_sd"]
    a, b = (Path(v).stem.removeprefix("talk_") for v in (pair.a_video, pair.b_video))
    for seed in args.seeds:
        jobs = _jobs(args, pair, seed, out, work / "jobs")
        (work / "jobs").mkdir(parents=True, exist_ok=True)
        if args.sequential:
            results = [train_and_render(**j) for j in jobs]
        else:
            results = [json.loads(p.read_text()) for p in run_workers(__file__, jobs, work / "jobs")]
        trained = [spec for spec in args.systems if swap_size(spec) is None]
        for spec in args.systems:  # the swap is the same for every seed: once
            size = swap_size(spec)
            if size is not None and seed == args.seeds[0]:
                render_to = str(out / f"{pair.name.replace(':', '-')}_swap{size}.mp4")
                results.append(swap_and_render(pair, size, args.margin, pair.clip, render_to, work))
                jobs.append({"render_to": render_to})
                trained.append(spec)
        for spec, job, r in zip(trained, jobs, results):
            row = {**score(job["render_to"], pair.clip, target), **r, "seed": seed}
            rows.setdefault(spec, []).append(row)
            labels = (f"source (A: {a})", f"output: {spec}", f"target (B: {b})")
            strip = out / f"{Path(job['render_to']).stem}.png"
            write_strip(pair.clip, job["render_to"], pair.b_video, strip, labels, args.points, args.tile)
            print(f"{pair.name} seed {seed} {spec}: " + ", ".join(f"{k}={v}" for k, v in row.items()), flush=True)
    return summarise(rows)


def main(argv: Optional[list[str]] = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--worker"]:
        return worker(argv[1])
    if "--self" in argv:  # the self-reenactment benchmark, with ground truth (benchmarks/faces_self.py)
        import faces_self

        return faces_self.main([a for a in argv if a != "--self"])
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--pairs", nargs="+", default=list(DEFAULT_PAIRS), help="A:B video names (default: %(default)s)")
    ap.add_argument("--data", default=str(DEFAULT_DATA), help="folder of the videos (default: %(default)s)")
    ap.add_argument(
        "--systems", nargs="+", default=["default", "cyclegan", "swap"], help="MODEL[+field=value,...], swap[=SIZE]"
    )
    ap.add_argument("--size", type=int, default=64, help="extract and training size S (px)")
    ap.add_argument(
        "--margin", type=float, default=MARGIN, help="border around the face in the crops (extract --margin)"
    )
    ap.add_argument("--preset", default="default", choices=("tiny", "default", "official"))
    ap.add_argument("--time-limit", type=float, default=1200.0, help="wall-clock training seconds per system")
    ap.add_argument("--holdout", type=float, default=0.2, help="share of A's video (its end) kept out of training")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0])
    ap.add_argument("--threads", type=int, default=1, help="torch threads per training process")
    ap.add_argument("--sequential", action="store_true", help="train systems one after another (idle machine)")
    ap.add_argument("--points", type=int, default=4, help="time points (rows) of each strip")
    ap.add_argument("--tile", type=int, default=192, help="side of each strip image (px)")
    ap.add_argument("--out", default="faces_out", help="renders, strips and results.json go here")
    ap.add_argument("--json", help="also write the results to this JSON file")
    ap.add_argument("--keep", action="store_true", help="keep the datasets and runs (in OUT/work)")
    args = ap.parse_args(argv)
    for spec in args.systems:
        if swap_size(spec) is None:
            parse_system(spec, args.preset, args.size)  # fail early on a typo
    if not 0 < args.holdout < 1:
        raise SystemExit("--holdout must lie between 0 and 1")
    out = Path(args.out)
    work = out / "work"
    work.mkdir(parents=True, exist_ok=True)
    import torch  # noqa: F401  (named in the machine line)

    env = environment(args.threads)
    print(env, flush=True)
    info = {
        k: getattr(args, k)
        for k in ("size", "margin", "preset", "time_limit", "holdout", "seeds", "systems", "threads")
    }
    info.update(environment=env, mode="sequential" if args.sequential else "parallel")
    results: dict[str, dict[str, Any]] = {}
    pairs: dict[str, Any] = {}
    try:
        for spec in args.pairs:
            pair = prepare_pair(spec, Path(args.data), args.size, args.holdout, work, args.margin)
            pairs[spec] = pair.info
            results[spec] = run_pair(args, pair, out, work)
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    title = f"faces, {args.size} px, preset {args.preset}, {args.time_limit:g} s per system, seeds {args.seeds}"
    clips = [
        f"{spec}: held-out clip of {p['a']} from {p['split_s']} s, {p['clip_frames']} frames, "
        f"mouth opening sd {p['mouth_source_sd'] or 0:.3f} (under ~0.02: the mouth correlation is noise)"
        for spec, p in pairs.items()
    ]
    lines = [title, "", *table_lines(results), "", *clips, env]
    print("\n".join(lines))
    (out / "results.md").write_text("\n".join(lines) + "\n")
    report = json.dumps({"info": info, "pairs": pairs, "results": results}, indent=2, allow_nan=False) + "\n"
    (out / "results.json").write_text(report)
    if args.json:
        Path(args.json).write_text(report)


if __name__ == "__main__":
    main()
