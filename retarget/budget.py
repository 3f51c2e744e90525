"""Memory budgets: refuse a configuration whose memory cannot exist, before allocating any of it.

Each command's estimate is a few lines of arithmetic on its config (``*_bytes``); each
``check_*`` compares it with what the device has (:func:`available_memory`: CPU
``MemAvailable`` from ``/proc/meminfo``, else ``os.sysconf``; CUDA
``torch.cuda.mem_get_info``) and, only where the estimate exceeds it, raises one
:class:`~retarget.errors.RetargetError` line naming the option most to blame and the
largest value of it that fits, e.g. ``--batch-size 100000: needs about 1.2 TB, this
machine has 20 GB free; at most --batch-size 37 fits``. Tests pass ``available``.

Network sizes are counted, not guessed: the networks are built on torch's ``meta``
device (shapes only, no memory, no arithmetic) and the objective's generator pass runs
on meta tensors, summing the outputs of every leaf module (:mod:`retarget.nn.sizes`). The
measuring scripts were run once by hand (not kept): the constants below carry their results.

Calibration: peak RSS (``ru_maxrss``) of a subprocess over its RSS before the networks
were built, for two real float32 CPU steps on one thread, against the estimate:

===========================================  ========  ========  =====
what                                         measured  estimate  ratio
===========================================  ========  ========  =====
train, default preset, 64 px, batch 1 / 2    1.23 GB   1.32 GB   1.07
                                             1.48 GB   1.67 GB   1.13
train, default preset, 128 px, batch 1 / 2   2.13 GB   2.35 GB   1.10
                                             3.44 GB   3.72 GB   1.08
train, default preset, 256 px, batch 1       5.80 GB   6.41 GB   1.10
train, tiny preset, 64 px batch 4, 128 px 4  243 MB    231 MB    0.95
                                             603 MB    610 MB    1.01
train, cyclegan, default, 64 px, batch 2     663 MB    727 MB    1.10
render, default G, 456x256, batch 2 / 8      315 MB    351 MB    1.11
                                             932 MB    1.01 GB   1.08
render, default G, 912x512, batch 2          927 MB    995 MB    1.07
enhancer x4 width 32, batch 8 / 32           210 MB    193 MB    0.92
                                             470 MB    465 MB    0.99
enhancer x2 width 64, batch 16               631 MB    830 MB    1.32
enhancer x4 width 4, patch 32, batch 4000    890 MB    900 MB    1.02
enhancer x4 width 4, patch 32, batch 16000   3.25 GB   3.31 GB   1.02
enhancer x8 width 4, patch 32, batch 8000    1.68 GB   1.68 GB   1.00
enhancer x2 width 8, patch 64, batch 2000    1.99 GB   2.38 GB   1.20
===========================================  ========  ========  =====

bf16 autocast used less (train, default, 128 px, batch 1: 1.84 GB), so the float32
estimate is an upper bound for it. Only what cannot fit is refused: the default preset
at 256 px, batch 1, needs about 6.4 GB, less than an 8 GB machine has free.
"""

from __future__ import annotations

import dataclasses
import os
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, Optional, Sequence

import numpy as np

from retarget.config import ExtractConfig
from retarget.errors import RetargetError

if TYPE_CHECKING:  # torch is imported where a count needs it: extract runs without it
    import torch

#: bytes a trained parameter holds: float32 weight, gradient and Adam's two moments
PARAM_BYTES = 16
#: bytes per activation value the meta count finds in a training step (float32; autograd keeps
#: most layer outputs, in-place ReLUs share theirs, the backward pass adds its own: 2.8-3.8
#: measured, see the module's table)
ACT_BYTES = 4.0
#: what a CPU process adds to its peak beside the tensors (allocator arenas, thread pools)
OVERHEAD = 100_000_000
#: bytes per value of the largest layer output in an inference pass (render): that layer's
#: input and output, a residual skip, the float32 picture in and out (13.3 measured)
RENDER_BYTES = 14.0
#: picture copies in flight per frame of a batch (uint8: cut, padded, result, composed)
PICTURE_COPIES = 4
#: frames the extract writer queues per worker (:class:`retarget.dataset.writer.ImageWriter`)
QUEUED_PER_WORKER = 4
#: buffers per written image (resized, BGR copy, encoded file)
OUTPUT_BUFFERS = 3
#: bytes per counted enhancer activation value: its pixel shuffles, ReLUs and sums are not
#: leaf modules (7.4 and 9.6 measured at scale 2 and 4)
ENHANCER_ACT_BYTES = 10.0
#: bytes per value of a batch's full-size patches (``patch^2 * 3``) outside the network's leaf
#: modules: the patches gathered and flipped, their small inputs, the bilinear base, the loss's
#: differences and the output's gradient (34-36 measured with a narrow network, where they dominate)
ENHANCER_PATCH_BYTES = 36.0


def available_memory(device: torch.device | str = "cpu") -> int:
    """Bytes free on ``device``: CUDA ``mem_get_info``; otherwise (CPU, MPS's unified memory) the
    machine's available RAM (``MemAvailable``, else free pages from ``os.sysconf``)."""
    if _is_cuda(device):
        import torch

        return int(torch.cuda.mem_get_info(torch.device(device))[0])
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return int(os.sysconf("SC_AVPHYS_PAGES")) * int(os.sysconf("SC_PAGE_SIZE"))
    except (ValueError, OSError, AttributeError):
        return 1 << 62  # unknown: refuse nothing


def _is_cuda(device: torch.device | str) -> bool:
    return str(device).split(":")[0] == "cuda"


def human(n: float) -> str:
    """``n`` bytes in decimal units with two significant digits: ``1.2 TB``, ``20 GB``, ``512 MB``."""
    for unit in ("B", "kB", "MB", "GB", "TB", "PB", "EB", "ZB", "YB"):
        if n < 999.5 or unit == "YB":
            return f"{n:.1f} {unit}" if n < 9.95 and unit != "B" else f"{n:.0f} {unit}"
        n /= 1000
    raise AssertionError("unreachable")


def extract_bytes(cfg: ExtractConfig, frames: Sequence[tuple[int, int]]) -> int:
    """Bytes extract holds for the largest of ``frames`` (each video's width, height): decoded
    frames queued for the writer, and each worker's output image buffers."""
    from retarget.geometry import frame_cut

    most = 0
    for width, height in frames:
        out_w = out_h = cfg.size
        if cfg.align == "none":
            try:
                out_w, out_h = frame_cut(cfg.frame, width, height, cfg.size, cfg.crop).size
            except ValueError:
                pass  # a crop outside the frame: refused with its own message later
        queued = QUEUED_PER_WORKER * cfg.workers * width * height * 3
        most = max(most, queued + cfg.workers * OUTPUT_BUFFERS * out_w * out_h * 3)
    return most


@dataclass(frozen=True)
class Knob:
    """An option that memory grows with: its flag, how to read and set it, and the range searched."""

    flag: str
    get: Callable[[Any], int]
    put: Callable[[Any, int], Any]
    default: int  # the value a refusal compares against (blame goes to the option furthest above it)
    low: int = 1  # the smallest value to offer
    unit: int = 1  # offered values are multiples of this


def _guess(f: Callable[[int], int], available: int, lo: int) -> Optional[float]:
    """Where the quadratic through ``f`` at ``lo``, ``2 lo``, ``4 lo`` first reaches ``available``
    (each estimate is a quadratic, or nearly, in one option); None if it never does."""
    xs = [lo, 2 * lo, 4 * lo]
    coef = np.polyfit(np.array(xs, float), np.array([f(x) for x in xs], float), 2)
    coef[2] -= available
    roots = [r.real for r in np.roots(coef) if abs(r.imag) < 1e-9 and r.real >= lo]
    return min(roots) if roots else None


def _largest(f: Callable[[int], int], available: int, low: int, high: int, unit: int) -> Optional[int]:
    """The largest multiple of ``unit`` in [``low``, ``high``] with ``f(value) <= available`` (``f``
    increasing); None if none. A quadratic guess, checked, then a binary search if it missed."""
    lo, hi = -(-low // unit), high // unit

    def fits(k: int) -> bool:
        return f(k * unit) <= available

    if lo > hi or not fits(lo):
        return None
    guess = _guess(lambda k: f(k * unit), available, lo)
    g = hi if guess is None else min(hi, max(lo, int(guess)))
    if fits(g):
        if g == hi or not fits(g + 1):
            return g * unit
        lo = g + 1
    else:
        if g - 1 <= lo or fits(g - 1):
            return max(lo, g - 1) * unit
        hi = g - 2
    while lo < hi:
        mid = (lo + hi + 1) // 2
        lo, hi = (mid, hi) if fits(mid) else (lo, mid - 1)
    return lo * unit


def refuse(
    cfg: Any, estimate: Callable[[Any], int], knobs: Sequence[Knob], available: int, where: str = "this machine"
) -> None:
    """RetargetError when ``estimate(cfg)`` exceeds ``available`` bytes, naming the knob to lower.

    The blame goes to the knob above its default whose reset shrinks the estimate most,
    else to the first knob that can be lowered enough; the line names the largest value
    of it that fits. Where no one knob can, it names the options to lower together.
    """
    need = estimate(cfg)
    if need <= available:
        return
    head = f"needs about {human(need)}, {where} has {human(available)} free"

    def shrink(k: Knob) -> float:
        return need / max(1, estimate(k.put(cfg, k.default)))

    raised = sorted((k for k in knobs if k.get(cfg) > k.default), key=shrink, reverse=True)
    for k in [*raised, *(k for k in knobs if k not in raised)]:
        value = k.get(cfg)
        # a raised knob: above its default first (the usual answer), then below it
        for low, high in [(k.default, value - 1), (k.low, k.default - 1)] if k in raised else [(k.low, value - 1)]:
            best = _largest(lambda v, k=k: estimate(k.put(cfg, v)), available, low, high, k.unit)
            if best is not None:
                raise RetargetError(f"{k.flag} {value}: {head}; at most {k.flag} {best} fits")
    named = raised or list(knobs)
    flags = " ".join(f"{k.flag} {k.get(cfg)}" for k in named)
    raise RetargetError(f"{flags}: {head}; lower {' and '.join(k.flag for k in named)}")


def _where(device: torch.device | str) -> str:
    return "this GPU" if _is_cuda(device) else "this machine"


def _field_knob(flag: str, name: str, default: int, **kw: Any) -> Knob:
    return Knob(flag, lambda c: getattr(c, name), lambda c, v: dataclasses.replace(c, **{name: v}), default, **kw)


def check_extract(cfg: ExtractConfig, frames: Sequence[tuple[int, int]], available: Optional[int] = None) -> None:
    """RetargetError when extracting videos of ``frames`` (width, height) with ``cfg`` cannot fit in RAM."""
    knobs = [
        _field_knob("--size", "size", ExtractConfig.size, low=16),
        _field_knob("--workers", "workers", ExtractConfig.workers),
    ]
    free = available_memory("cpu") if available is None else available
    refuse(cfg, lambda c: extract_bytes(c, frames), knobs, free)


_TRIED = re.compile(r"allocate (\d+) bytes|allocate ([\d.]+ [KMGTPE]i?B)", re.I)
_OOM_TEXT = ("can't allocate memory", "out of memory", "insufficient memory", "failed to allocate")


def out_of_memory(exc: BaseException) -> Optional[RetargetError]:
    """One :class:`RetargetError` line for an allocation that failed despite the budgets (torch's
    ``DefaultCPUAllocator: can't allocate memory``, CUDA out of memory, ``MemoryError``, OpenCV's
    ``Insufficient memory``), or None for any other exception. For the CLI's error handler."""
    text = str(exc)
    if not (isinstance(exc, MemoryError) or any(t in text.lower() for t in _OOM_TEXT)):
        return None
    if not isinstance(exc, (MemoryError, RuntimeError)) and type(exc).__module__.split(".")[0] != "cv2":
        return None
    match = _TRIED.search(text)
    tried = ""
    if match:
        tried = f" ({human(int(match.group(1))) if match.group(1) else match.group(2)} requested)"
    return RetargetError(
        f"out of memory{tried}: lower --size, --scale, --batch-size or the network width (--ngf, --width)"
    )
