"""Render speed: end-to-end frames/s against generator-only frames/s.

Target (issue 4): streaming decode -> translate -> encode runs at >= 90 % of the
generator's own frames/s at the same batch size and resolution, because decoding and
encoding overlap with inference.

    python benchmarks/render_speed.py [VIDEO] [--size 128] [--batch-size 8] [--threads 2]
    python benchmarks/render_speed.py [VIDEO] --size 256 --stabilize 1 [--frames 48]

With ``--stabilize S`` it compares end to end with ``--stabilize S`` against without
instead (target, issue 9: >= 0.8x), alternating the two in one process, and writes
"## render --stabilize".

With ``--limits --scales 144 --frames 48``, each stage alone, the whole render, and FLOPs
against measured GEMM (:mod:`render_limits`); writes "## render: stages and limits".

With ``--whole`` it renders whole frames (``--frame full``) of the video at each
``--scales`` short side, without and with ``--tile`` (frames/s end to end, generator
included), and checks that memory stays flat over the video's length: the clip is
played ``--loops`` times in a row and the process's resident memory is sampled during
each render (its peak in the first and in the last third); writes "## render: whole frames"::

    python benchmarks/render_speed.py --whole --scales 128 256 --tile 128 --loops 3

Uses an untrained default-preset generator (speed does not depend on the weights),
``torch.set_num_threads(threads)``, and writes the figures to docs/benchmarks.md under
"## render" (replacing that section only).
"""

from __future__ import annotations

import argparse
import os
import re
import tempfile
import time
from pathlib import Path

# first: OpenMP threads that spin while waiting would take the CPU the decoder and
# encoder threads need (see docs/benchmarks.md, train)
from common import ROOT, environment  # noqa: I001,E402

import numpy as np  # noqa: E402
import torch  # noqa: E402

from retarget.config import RenderConfig, model_preset  # noqa: E402
from retarget.geometry import center_crop  # noqa: E402
from retarget.nn.networks import build_generator  # noqa: E402
from retarget.render.render import translate_video
from retarget.render.translate import Translator  # noqa: E402
from retarget.video.reader import VideoReader, probe  # noqa: E402

DEFAULT_VIDEO = ROOT.parent / "shared" / "data" / "bigbuckbunny.mp4"


def generator_only(translator: Translator, crops: list[np.ndarray], batch: int) -> float:
    """Frames/s of the generator alone (uint8 in, uint8 out, as render calls it)."""
    translator(crops[:batch])  # warm-up
    t0 = time.perf_counter()
    for i in range(0, len(crops), batch):
        translator(crops[i : i + batch])
    return len(crops) / (time.perf_counter() - t0)


def end_to_end(
    translator: Translator, video: Path, size: int, batch: int, out_dir: Path, stabilize: float = 0.0
) -> float:
    cfg = RenderConfig(
        input=str(video), output=str(out_dir / "bench.mp4"), batch_size=batch, overwrite=True, stabilize=stabilize
    )
    translator([np.zeros((size, size, 3), np.uint8)] * batch)  # same warm-up as generator_only
    # as render() does: a single-threaded encoder beside a CPU generator
    threads = 1 if translator.device.type == "cpu" else 0
    summary = translate_video(cfg, translator, size, encoder_threads=threads, quiet=True)
    return summary.frames / summary.seconds


def overlap_only(video: Path, size: int, batch: int, out_dir: Path, seconds_per_frame: float = 0.1) -> float:
    """End-to-end / generator-only ratio for a generator that sleeps instead of computing.

    It uses no CPU, as a generator on a GPU, so this isolates how well decoding and
    encoding hide behind inference from the competition for the 2 CPU cores.
    """

    def sleeper(crops):
        time.sleep(seconds_per_frame * len(crops))
        return list(crops)

    cfg = RenderConfig(
        input=str(video), output=str(out_dir / "sleep.mp4"), batch_size=batch, overwrite=True, stabilize=0.0
    )
    summary = translate_video(cfg, sleeper, size, encoder_threads=1, quiet=True)
    return summary.frames / summary.seconds * seconds_per_frame


def load() -> str:
    """The machine and its load, for the report."""
    return environment()


def write_section(text: str, path: Path = ROOT / "docs" / "benchmarks.md", title: str = "render") -> None:
    """Replace (or append) the "## TITLE" section of docs/benchmarks.md."""
    old = path.read_text() if path.exists() else "# Benchmarks\n"
    section = f"## {title}\n\n" + text.strip() + "\n"
    pattern = re.compile(rf"^## {re.escape(title)}\n.*?(?=^## |\Z)", re.S | re.M)
    if pattern.search(old):
        new = pattern.sub(lambda _: section + "\n", old).rstrip() + "\n"
    else:
        new = old.rstrip() + "\n\n" + section
    path.write_text(new)


def make_clip(video: Path, frames: int, dest: Path) -> Path:
    """The first ``frames`` frames of ``video`` (with its audio), re-encoded, at source size."""
    from retarget.video.writer import VideoWriter

    info = probe(video)
    with (
        VideoReader(video, max_frames=frames) as reader,
        VideoWriter(dest, info.width, info.height, info.time_base, info.fps, crf=12, audio_from=video) as writer,
    ):
        for f in reader:
            writer.write(f.image, f.pts)
    return dest


def stabilizer_costs(crops: list[np.ndarray], strength: float) -> tuple[float, float]:
    """Milliseconds per frame of the stabilizer's prepare (flow) and blend halves alone."""
    from retarget.render.stabilize import Stabilizer

    stab = Stabilizer(strength)
    t0 = time.perf_counter()
    links = [stab.prepare(c) for c in crops]
    t1 = time.perf_counter()
    for c, link in zip(crops, links):
        stab.blend(c, link)
    t2 = time.perf_counter()
    return 1000 * (t1 - t0) / len(crops), 1000 * (t2 - t1) / len(crops)


def looped_clip(video: Path, loops: int, dest: Path) -> Path:
    """``video`` played ``loops`` times in a row (timestamps continued), re-encoded at source size."""
    from retarget.video.writer import VideoWriter

    info = probe(video)
    with VideoWriter(dest, info.width, info.height, info.time_base, info.fps, crf=12) as writer:
        pts = 0
        step = max(1, round(1 / (info.fps * float(info.time_base)))) if info.fps else 1
        for _ in range(loops):
            with VideoReader(video) as reader:
                for f in reader:
                    writer.write(f.image, pts)
                    pts += step
    return dest


class RssSampler:
    """Resident memory of this process, sampled every ``every`` seconds in a thread (Linux /proc)."""

    def __init__(self, every: float = 0.1) -> None:
        import threading

        self.samples: list[tuple[float, int]] = []
        self.every = every
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _rss(self) -> int:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")

    def _run(self) -> None:
        while not self._stop.is_set():
            self.samples.append((time.perf_counter(), self._rss()))
            self._stop.wait(self.every)

    def __enter__(self) -> "RssSampler":
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def thirds(self) -> tuple[float, float]:
        """Peak MiB in the first and in the last third of the sampled time."""
        t0, t1 = self.samples[0][0], self.samples[-1][0]
        span = max(t1 - t0, 1e-9)
        first = [r for t, r in self.samples if t - t0 <= span / 3]
        last = [r for t, r in self.samples if t - t0 >= 2 * span / 3]
        return max(first) / 2**20, max(last) / 2**20


def whole_frames(args: argparse.Namespace, video: Path, device: str, tmp: Path) -> None:
    """Whole-frame renders at each scale, untiled and tiled; frames/s and memory over the video."""
    info = probe(video)
    clip = looped_clip(video, args.loops, tmp / "looped.mp4")
    frames = probe(clip).frame_count
    torch.manual_seed(0)
    net = build_generator(model_preset("default", size=128)).eval().to(device)
    translator = Translator(net, device, amp=args.amp)
    rows = []
    for scale in args.scales:
        for tile in [None, *([args.tile] if args.tile else [])]:
            cfg = RenderConfig(input=str(clip), output=str(tmp / "whole.mp4"), batch_size=args.batch_size,
                               overwrite=True, stabilize=0.0, tile=tile)  # fmt: skip
            threads = 1 if device == "cpu" else 0
            with RssSampler() as rss:
                s = translate_video(cfg, translator, 128, frame="full", scale=scale, encoder_threads=threads,
                                    quiet=True)  # fmt: skip
            first, last = rss.thirds()
            rows.append((scale, tile, s.frames / s.seconds, first, last, s.width, s.height))
            print(f"scale {scale} tile {tile}: {s.frames / s.seconds:.2f} frames/s end to end, "
                  f"peak RSS {first:.0f} MiB (first third) / {last:.0f} MiB (last third)", flush=True)  # fmt: skip
    lines = [
        f"`python benchmarks/render_speed.py --whole --scales {' '.join(map(str, args.scales))}"
        + (f" --tile {args.tile}" if args.tile else "")
        + f" --loops {args.loops}` on {video.name} ({info.width}x{info.height}) played {args.loops} times "
        f"({frames} frames), untrained default-preset generator, `--amp {args.amp}` ({translator.amp}), "
        f"batch {args.batch_size}, torch threads {args.threads}, device {device}; end to end = decode, the whole "
        "frame scaled to its short side = scale, reflect padding, generator, bilinear upscale back to "
        "1280x720, H.264 encode (1 encoder thread on CPU).",
        f"Machine: {load()}.",
        "",
        "| scale (short side) | --tile | end to end (frames/s) | peak RSS, first third (MiB) | last third (MiB) |",
        "|---:|---:|---:|---:|---:|",
    ]
    for scale, tile, fps, first, last, w, h in rows:
        lines.append(f"| {scale} | {tile or '-'} | {fps:.2f} | {first:.0f} | {last:.0f} |")
    if not args.no_write:
        write_section("\n".join(lines), title="render: whole frames")
        print("wrote docs/benchmarks.md ## render: whole frames")


def compare_stabilize(args: argparse.Namespace, clip: Path, video: Path, device: str, tmp: Path) -> None:
    """End to end with ``--stabilize S`` against without, alternating, at each size."""
    info, n_frames, start_load = probe(video), probe(clip).frame_count, load()
    rows = []
    for size in args.size:
        torch.manual_seed(0)
        net = build_generator(model_preset("default", size=size)).eval().to(device)
        translator = Translator(net, device)
        with VideoReader(clip) as reader:
            crops = [center_crop(f.image, size) for f in reader]
        prep_ms, blend_ms = stabilizer_costs(crops, args.stabilize)
        plain, stab = [], []
        for _ in range(args.rounds):
            plain.append(end_to_end(translator, clip, size, args.batch_size, tmp))
            stab.append(end_to_end(translator, clip, size, args.batch_size, tmp, args.stabilize))
        plain.append(end_to_end(translator, clip, size, args.batch_size, tmp))
        ratios = [s / ((p0 + p1) / 2) for s, p0, p1 in zip(stab, plain, plain[1:])]
        row = (
            size,
            float(np.median(plain)),
            float(np.median(stab)),
            float(np.median(ratios)),
            min(ratios),
            max(ratios),
            prep_ms,
            blend_ms,
        )
        rows.append(row)
        print(
            f"size {size}: without {row[1]:.2f} frames/s, with --stabilize {args.stabilize:g} {row[2]:.2f} "
            f"frames/s, ratio {row[3]:.2f} (rounds: {', '.join(f'{r:.2f}' for r in ratios)}); "
            f"stabilizer alone: flow {prep_ms:.1f} ms, blend {blend_ms:.1f} ms per frame"
        )
    end_load = load()
    print(end_load)
    lines = [
        f"`python benchmarks/render_speed.py --stabilize {args.stabilize:g}` on {n_frames} frames of "
        f"{video.name} ({info.width}x{info.height}), untrained default-preset generator, batch "
        f"{args.batch_size}, torch threads {args.threads}, device {device}; end to end as above. Runs "
        f"without and with the stabilizer alternate ({args.rounds} rounds) in one process; the ratio is "
        "the median of each stabilized run over the mean of the unstabilized runs around it.",
        f"Load (2 CPU cores shared with other jobs, so single runs vary): before `{start_load}`, after `{end_load}`.",
        "",
        "| size | without (frames/s) | with (frames/s) | ratio (target >= 0.80) | ratio range "
        "| flow (ms/frame) | blend (ms/frame) |",
        "|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for size, p, s_, r, lo, hi, f_ms, b_ms in rows:
        lines.append(f"| {size} | {p:.2f} | {s_:.2f} | **{r:.2f}** | {lo:.2f}-{hi:.2f} | {f_ms:.1f} | {b_ms:.1f} |")
    lines += [
        "",
        "Flow and blend are timed alone on one core over the same crops (DIS `medium`, two flows per "
        "frame). The flow runs in the decode thread and the blend in the encode thread, so on a "
        "machine with cores to spare both hide behind the generator.",
    ]
    if not args.no_write:
        write_section("\n".join(lines), title="render --stabilize")
        print("wrote docs/benchmarks.md ## render --stabilize")


def limits(args: argparse.Namespace, clip: Path, video: Path, device: str) -> None:
    """Each stage alone against the whole render, and FLOPs against GEMM (benchmarks/render_limits.py)."""
    from render_limits import measure, table

    rows = []
    for scale in args.scales:
        row = measure(clip, scale, device)
        row["frames"] = probe(clip).frame_count
        rows.append(row)
        print({k: round(v, 3) for k, v in row.items()}, flush=True)
    text = table(rows, clip, f"Machine: {load()}").replace(clip.name, video.name)
    print(text)
    if not args.no_write:
        write_section(text, title="render: stages and limits")
        print("wrote docs/benchmarks.md ## render: stages and limits")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("video", nargs="?", default=str(DEFAULT_VIDEO))
    ap.add_argument("--size", type=int, nargs="+", default=[128])
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--frames", type=int, default=0, help="frames of the video to use (0 = all)")
    ap.add_argument("--rounds", type=int, default=3, help="alternating generator/end-to-end measurements")
    ap.add_argument("--no-write", action="store_true", help="print only; leave docs/benchmarks.md alone")
    ap.add_argument("--stabilize", type=float, default=0.0, help="compare end to end with this --stabilize")
    ap.add_argument("--whole", action="store_true", help="whole-frame renders at --scales (and --tile)")
    ap.add_argument("--scales", type=int, nargs="+", default=[128, 256], help="with --whole: short sides (px)")
    ap.add_argument("--tile", type=int, default=0, help="with --whole: also render with this --tile")
    ap.add_argument("--loops", type=int, default=3, help="with --whole: play the video this many times")
    ap.add_argument("--amp", default="auto", help="the translator's --amp")
    ap.add_argument("--limits", action="store_true", help="each stage alone, FLOPs and GEMM, at --scales")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    video = Path(args.video)
    info = probe(video)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    rows = []
    start_load = load()
    with tempfile.TemporaryDirectory() as tmp:
        clip = make_clip(video, args.frames, Path(tmp) / "clip.mp4") if args.frames else video
        if args.stabilize > 0:
            compare_stabilize(args, clip, video, device, Path(tmp))
            return
        if args.whole:
            whole_frames(args, clip, device, Path(tmp))
            return
        if args.limits:
            limits(args, clip, video, device)
            return
        n_frames = probe(clip).frame_count
        sleep_ratio = overlap_only(clip, args.size[0], args.batch_size, Path(tmp))
        print(f"zero-CPU generator (sleeps 0.1 s/frame): ratio {sleep_ratio:.2f}")
        for size in args.size:
            torch.manual_seed(0)
            net = build_generator(model_preset("default", size=size)).eval().to(device)
            translator = Translator(net, device)
            with VideoReader(clip) as reader:
                crops = [center_crop(f.image, size) for f in reader]
            # alternate the two measurements and pair neighbours, so that the load of the
            # shared machine (other jobs come and go) affects both sides of each ratio alike
            gens, e2es = [], []
            for _ in range(args.rounds):
                gens.append(generator_only(translator, crops, args.batch_size))
                e2es.append(end_to_end(translator, clip, size, args.batch_size, Path(tmp)))
            gens.append(generator_only(translator, crops, args.batch_size))
            ratios = [e / ((g0 + g1) / 2) for e, g0, g1 in zip(e2es, gens, gens[1:])]
            gen, e2e, ratio = float(np.median(gens)), float(np.median(e2es)), float(np.median(ratios))
            rows.append((size, gen, e2e, ratio, min(ratios), max(ratios)))
            print(
                f"size {size}: generator only {gen:.2f} frames/s, end to end {e2e:.2f} frames/s, "
                f"ratio {ratio:.2f} (rounds: {', '.join(f'{r:.2f}' for r in ratios)})"
            )
    end_load = load()
    print(end_load)
    lines = [
        f"`python benchmarks/render_speed.py` on {n_frames} frames of {video.name} "
        f"({info.width}x{info.height}, AAC audio), untrained default-preset generator, batch "
        f"{args.batch_size}, torch threads {args.threads} (OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY')}), device {device}; end to end = decode, "
        "centre crop, generator, upscale and place back at source size, H.264 encode "
        "(crf 18, preset veryfast, 1 encoder thread as render uses on CPU) with audio copy.",
        f"Generator-only and end-to-end runs alternate ({args.rounds} rounds); the ratio is the "
        "median of each end-to-end run over the mean of the generator-only runs around it.",
        f"Load (2 CPU cores shared by six engineers): before `{start_load}`, after `{end_load}`.",
        "",
        "| size | generator only (frames/s) | end to end (frames/s) | ratio (target >= 0.90) | ratio range |",
        "|---:|---:|---:|---:|---:|",
    ]
    for size, gen, e2e, ratio, lo, hi in rows:
        lines.append(f"| {size} | {gen:.2f} | {e2e:.2f} | **{ratio:.2f}** | {lo:.2f}-{hi:.2f} |")
    lines += [
        "",
        f"Overlap alone: with a generator that sleeps 0.1 s per frame instead of computing (no CPU, "
        f"like a GPU), end to end runs at **{sleep_ratio:.2f}** of its frames/s: the stages hide "
        "behind each other; what a CPU generator loses beyond that is the 2 cores it must share "
        "with decoding and H.264 encoding (about 30 ms of CPU per 720p frame).",
    ]
    if not args.no_write:
        write_section("\n".join(lines))
        print("wrote docs/benchmarks.md ## render")


if __name__ == "__main__":
    main()
