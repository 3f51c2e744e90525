"""extract speed: is ``--align none`` limited by decoding, and how fast is ``--align face``?

Usage: python benchmarks/extract_speed.py [--data ../shared/data] [--repeat 3] [--no-face]

For bigbuckbunny.mp4 (1280x720) and bikes.mp4 (640x272) it prints

* decode: frames/s of :class:`VideoReader` alone (decode + RGB conversion, what
  extract has to do anyway),
* extract none: frames/s of a whole ``extract --align none --size 256`` run (scene
  cuts, resize, PNG writing in the thread pool, manifest),
* the ratio extract / decode (1.0 = limited by decoding only).

and for ``--align face`` the frames/s on bigbuckbunny.mp4 and on a 1280x720 talking
head made by upscaling carphone_pristine.mp4 (scaled to 720 px high and centred on a
1280 px wide canvas, written with PyAV into a temporary folder).

Runs with torch.set_num_threads(2) like every benchmark here; the load average is
printed next to the figures because the machine is shared. Each figure is the best of
``--repeat`` runs so a burst of load elsewhere does not count.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import tempfile
import time
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np
from common import ROOT, load_average

from retarget.config import ExtractConfig, FaceConfig
from retarget.dataset.extract import extract
from retarget.errors import RetargetError
from retarget.progress import console
from retarget.video.reader import VideoReader, probe

load = load_average


def cpu_seconds() -> float:
    """User + system CPU time of this process, all threads (the machine is shared, so CPU
    time per frame is steadier than wall time)."""
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def decode_fps(path: Path) -> tuple[float, float]:
    """(frames/s, CPU ms per frame) of VideoReader alone."""
    t, c = time.perf_counter(), cpu_seconds()
    n = sum(1 for _ in VideoReader(path))
    return n / (time.perf_counter() - t), (cpu_seconds() - c) * 1000 / n


def extract_fps(path: Path, tmp: Path, **kw) -> tuple[float, float, int]:
    """(frames/s, CPU ms per frame, frames written) of a whole extract run."""
    out = tmp / "bench_ds"
    cfg = ExtractConfig(videos=(str(path),), output=str(out), overwrite=True, **kw)
    t, c = time.perf_counter(), cpu_seconds()
    try:
        s = extract(cfg)
        read, written = s.frames_read, s.frames_written
    except RetargetError:
        # No face in any frame (the bunny): the run still decoded and searched them all.
        read, written = probe(path).frame_count, 0
    fps = read / (time.perf_counter() - t)
    cpu = (cpu_seconds() - c) * 1000 / read
    shutil.rmtree(out, ignore_errors=True)
    return fps, cpu, written


def stages(path: Path, size: int = 256) -> dict[str, float]:
    """CPU ms per frame of each step of ``--align none`` (decoding uses FFmpeg's threads,
    the other steps one thread)."""
    from retarget.geometry import crop_none, none_matrix
    from retarget.dataset.scenes import SceneDetector
    from retarget.dataset.writer import PNG_PARAMS

    cv2.setNumThreads(1)
    t = time.process_time()
    images = [f.image for f in VideoReader(path)]
    out = {"decode+rgb": (time.process_time() - t) * 1000 / len(images)}
    _, square = none_matrix(images[0].shape[1], images[0].shape[0], size)
    detector = SceneDetector()
    steps = {
        "scene histogram": lambda im: detector(im),
        "crop+resize": lambda im: crop_none(im, square, size),
    }
    for name, fn in steps.items():
        t = time.process_time()
        for im in images:
            fn(im)
        out[name] = (time.process_time() - t) * 1000 / len(images)
    crops = [crop_none(im, square, size) for im in images]
    for name, ext, params in (
        ("png encode", ".png", PNG_PARAMS),
        ("jpg encode", ".jpg", [cv2.IMWRITE_JPEG_QUALITY, 95]),
    ):
        t = time.process_time()
        for c in crops:
            cv2.imencode(ext, c, params)
        out[name] = (time.process_time() - t) * 1000 / len(crops)
    cv2.setNumThreads(0)
    return out


def talking_head_720p(src: Path, dst: Path) -> Path:
    """carphone (176x144) scaled to 720 px high, centred on a black 1280x720 canvas, H.264."""
    with av.open(str(src)) as inp, av.open(str(dst), "w") as out:
        stream_in = inp.streams.video[0]
        rate = stream_in.average_rate or Fraction(30000, 1001)
        vs = out.add_stream("libx264", rate=rate)
        vs.width, vs.height, vs.pix_fmt = 1280, 720, "yuv420p"
        vs.options = {"crf": "18", "preset": "veryfast"}
        for frame in inp.decode(stream_in):
            img = frame.to_ndarray(format="rgb24")
            h, w = img.shape[:2]
            new_w = round(w * 720 / h)
            big = cv2.resize(img, (new_w, 720), interpolation=cv2.INTER_CUBIC)
            canvas = np.zeros((720, 1280, 3), np.uint8)
            x0 = (1280 - new_w) // 2
            canvas[:, x0 : x0 + new_w] = big
            for packet in vs.encode(av.VideoFrame.from_ndarray(canvas, format="rgb24")):
                out.mux(packet)
        for packet in vs.encode():
            out.mux(packet)
    return dst


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=str(ROOT.parent / "shared" / "data"))
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--no-face", action="store_true", help="skip the --align face runs")
    args = ap.parse_args(argv)
    try:
        import torch

        torch.set_num_threads(2)
    except ImportError:  # pragma: no cover
        pass
    data = Path(args.data)
    console.quiet = True  # no per-run tables between the figures
    print(f"cores {os.cpu_count()}, {load()}")
    with tempfile.TemporaryDirectory(prefix="extract_bench_") as tmp_name:
        tmp = Path(tmp_name)
        print(
            f"\n{'--align none':<18} {'fmt':>4} {'decode f/s':>10} {'extract f/s':>11} {'ratio':>6}"
            f" {'decode cpu ms/f':>16} {'extract cpu ms/f':>17}   load"
        )
        for name in ("bigbuckbunny.mp4", "bikes.mp4"):
            path = data / name
            if not path.exists():
                print(f"{name:<18} missing")
                continue
            for fmt in ("png", "jpg"):
                # Interleave decode-only and extract runs so both see the same load.
                dec, ext = (0.0, 0.0), (0.0, 0.0, 0)
                for _ in range(args.repeat):
                    dec = max(dec, decode_fps(path))
                    ext = max(ext, extract_fps(path, tmp, format=fmt))
                print(
                    f"{name:<18} {fmt:>4} {dec[0]:>10.1f} {ext[0]:>11.1f} {ext[0] / dec[0]:>6.2f}"
                    f" {dec[1]:>16.2f} {ext[1]:>17.2f}   {load()}"
                )
        print("\nCPU ms per frame of each step, --align none --size 256:")
        for name in ("bigbuckbunny.mp4", "bikes.mp4"):
            if (data / name).exists():
                st = stages(data / name)
                print(f"  {name:<18} " + "  ".join(f"{k} {v:.2f}" for k, v in st.items()))
        if args.no_face:
            return
        videos = []
        if (data / "bigbuckbunny.mp4").exists():
            videos.append(("bigbuckbunny.mp4", data / "bigbuckbunny.mp4"))
        if (data / "carphone_pristine.mp4").exists():
            videos.append(("talking head 720p", talking_head_720p(data / "carphone_pristine.mp4", tmp / "head720.mp4")))
        print(
            f"\n{'--align face':<18} {'decode f/s':>10} {'extract f/s':>11} {'aligned':>8} {'extract cpu ms/f':>17}   load"
        )
        for label, path in videos:
            dec, (fps, cpu, written) = (0.0, 0.0), (0.0, 0.0, 0)
            for _ in range(args.repeat):
                dec = max(dec, decode_fps(path))
                fps, cpu, written = max((fps, cpu, written), extract_fps(path, tmp, align="face", face=FaceConfig()))
            n = probe(path).frame_count
            print(f"{label:<18} {dec[0]:>10.1f} {fps:>11.1f} {written:>4}/{n:<3} {cpu:>17.2f}   {load()}")


if __name__ == "__main__":
    main()
