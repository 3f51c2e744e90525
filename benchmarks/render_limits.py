"""Render speed against its limits: each stage alone, the whole render, FLOPs against measured GEMM.

Used by ``python benchmarks/render_speed.py --limits [VIDEO] [--frames 48] [--scales 144]``
(writes "## render: stages and limits" of docs/benchmarks.md). For the default preset
rendering whole frames (``--frame full``) of a 720p video at each short side ``scale``:

- **decode** alone (PyAV, frames to RGB arrays) and **encode** alone (H.264 at the source
  size, crf 18, 1 encoder thread as render uses on CPU, frames already in memory);
- the **translator** alone on the scaled frames (uint8 in, uint8 out, batch 8): torch
  float32, torch bf16 (autocast) and onnxruntime (the generator exported by
  :func:`retarget.render.export.onnx_bytes`, float32), each at the same thread count;
- the **whole render** (decode, scale, translate, upscale, encode overlapped), with
  torch at ``--amp auto`` and with onnxruntime, and its ratio to its slowest stage;
- the translator's **FLOPs per frame** (``torch.utils.flop_counter``, a multiply-add = 2)
  and the machine's **measured GEMM throughput** (float32 ``torch.mm`` 2048^2, same
  threads), so the translator's achieved FLOP/s is a % of that peak.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from retarget.config import RenderConfig, model_preset
from retarget.nn.networks import build_generator
from retarget.render.render import translate_video
from retarget.render.translate import Translator
from retarget.video.reader import VideoReader, probe
from retarget.video.writer import VideoWriter

BATCH = 8


def decode_fps(video: Path) -> tuple[float, list[np.ndarray]]:
    """Frames/s of decoding ``video`` to RGB arrays, and the frames."""
    t0 = time.perf_counter()
    with VideoReader(video) as reader:
        frames = [f.image for f in reader]
    return len(frames) / (time.perf_counter() - t0), frames


def encode_fps(frames: list[np.ndarray], video: Path, tmp: Path) -> float:
    """Frames/s of H.264-encoding ``frames`` at their size (crf 18, 1 thread, as render on CPU)."""
    info = probe(video)
    h, w = frames[0].shape[:2]
    step = max(1, round(1 / (info.fps * float(info.time_base)))) if info.fps else 1
    t0 = time.perf_counter()
    with VideoWriter(tmp / "encode.mp4", w, h, info.time_base, info.fps, crf=18, threads=1) as writer:
        for i, image in enumerate(frames):
            writer.write(image, i * step)
    return len(frames) / (time.perf_counter() - t0)


def scaled(frames: list[np.ndarray], scale: int) -> list[np.ndarray]:
    """The frames at short side ``scale``, sides rounded down to multiples of 4 (what the generator sees)."""
    import cv2

    h, w = frames[0].shape[:2]
    k = scale / min(h, w)
    size = (int(round(w * k)) // 4 * 4, int(round(h * k)) // 4 * 4)
    return [cv2.resize(f, size, interpolation=cv2.INTER_AREA) for f in frames]


def translate_fps(translate: Callable[[list[np.ndarray]], list[np.ndarray]], pictures: list[np.ndarray]) -> float:
    """Frames/s of ``translate`` over ``pictures`` in batches of :data:`BATCH`, after one warm-up batch."""
    translate(pictures[:BATCH])
    t0 = time.perf_counter()
    for i in range(0, len(pictures), BATCH):
        translate(pictures[i : i + BATCH])
    return len(pictures) / (time.perf_counter() - t0)


def flops_per_frame(net: torch.nn.Module, height: int, width: int) -> float:
    """FLOPs of one ``height x width`` frame through ``net`` (a multiply-add counts 2)."""
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter, torch.no_grad():
        net(torch.zeros(1, 3, height, width))
    return float(counter.get_total_flops())


def gemm_flops(n: int = 2048, repeats: int = 5) -> float:
    """Measured float32 matrix-multiply FLOP/s at torch's thread count (best of ``repeats``)."""
    a, b = torch.randn(n, n), torch.randn(n, n)
    torch.mm(a, b)
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        torch.mm(a, b)
        best = min(best, time.perf_counter() - t0)
    return 2 * n**3 / best


def whole_render_fps(translate: Any, video: Path, scale: int, tmp: Path) -> float:
    """Frames/s end to end: whole frames at short side ``scale``, as ``render --frame full`` does."""
    cfg = RenderConfig(str(video), str(tmp / "render.mp4"), overwrite=True, stabilize=0.0, batch_size=BATCH)
    summary = translate_video(cfg, translate, 128, frame="full", scale=scale, encoder_threads=1, quiet=True)
    return summary.frames / summary.seconds


def measure(video: Path, scale: int, device: str = "cpu") -> dict[str, float]:
    """Every figure of the table for one ``scale``: frames/s per stage, FLOPs, GEMM, ratios."""
    from retarget.render.export import OnnxTranslator, onnx_bytes

    torch.manual_seed(0)
    net = build_generator(model_preset("default", size=128)).eval().to(device)
    fp32, bf16 = Translator(net, device, amp="off"), Translator(net, device, amp="bf16")
    auto = Translator(net, device, amp="auto")
    onnx = OnnxTranslator(onnx_bytes(net), device, threads=torch.get_num_threads())
    with tempfile.TemporaryDirectory() as folder:
        tmp = Path(folder)
        row: dict[str, float] = {"scale": scale}
        row["decode"], frames = decode_fps(video)
        row["encode"] = encode_fps(frames, video, tmp)
        small = scaled(frames, scale)
        row["fp32"], row["bf16"], row["onnx"] = (translate_fps(t, small) for t in (fp32, bf16, onnx))
        row["render_torch"] = whole_render_fps(auto, video, scale, tmp)
        row["render_onnx"] = whole_render_fps(onnx, video, scale, tmp)
    row["auto_is_bf16"] = float(auto.amp == "bf16")
    h, w = small[0].shape[:2]
    row["height"], row["width"] = h, w
    row["flops"] = flops_per_frame(net.cpu(), h, w)
    row["gemm"] = gemm_flops()
    best = max(row["fp32"], row["bf16"], row["onnx"])
    row["peak_pct"] = 100 * row["flops"] * row["fp32"] / row["gemm"]
    row["slowest"] = min(row["decode"], row["encode"], best)
    row["ratio"] = max(row["render_torch"], row["render_onnx"]) / row["slowest"]
    return row


def table(rows: list[dict[str, float]], video: Path, env: str) -> str:
    """The docs/benchmarks.md section for ``rows`` (one per scale)."""
    info = probe(video)
    n = rows[0].get("frames", info.frame_count)
    lines = [
        f"`python benchmarks/render_speed.py --limits` on {int(n)} frames of {video.name} "
        f"({info.width}x{info.height}), untrained default-preset generator, whole frames (`--frame full`) at "
        f"each scale, batch {BATCH}, stabilize off. {env}.",
        "",
        "| scale (px) | decode | encode | torch fp32 | torch bf16 | onnxruntime | render, torch | render, onnx "
        "| render / slowest stage | GFLOPs/frame | GEMM (GFLOP/s) | fp32 translator, % of GEMM |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {int(r['scale'])} ({int(r['width'])}x{int(r['height'])}) | {r['decode']:.1f} | {r['encode']:.1f} "
            f"| {r['fp32']:.2f} | {r['bf16']:.2f} | {r['onnx']:.2f} | {r['render_torch']:.2f} "
            f"| {r['render_onnx']:.2f} | **{r['ratio']:.2f}** | {r['flops'] / 1e9:.2f} | {r['gemm'] / 1e9:.1f} "
            f"| {r['peak_pct']:.0f} % |"
        )
    lines += [
        "",
        "Frames/s unless said. Decode and encode are alone (encode: 1 thread, frames in memory); "
        "the translators are alone on the scaled frames; render is the whole command (torch at `--amp "
        "auto`, which is " + ("bf16" if rows[0]["auto_is_bf16"] else "float32") + " here). The slowest "
        "stage is the slower of decode, encode and the fastest translator; the ratio is the faster "
        "render over it. % of GEMM = FLOPs per frame x torch fp32 frames/s over the measured float32 "
        "GEMM throughput.",
    ]
    return "\n".join(lines)
