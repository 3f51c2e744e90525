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
on meta tensors, summing the outputs of every leaf module (:func:`model_counts`).

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
from functools import lru_cache
from typing import Any, Callable, Optional, Sequence

import torch
from torch import nn

from retarget.config import EnhancerConfig, ExtractConfig, LossConfig, ModelConfig, TrainConfig
from retarget.errors import RetargetError

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


def available_memory(device: torch.device | str = "cpu") -> int:
    """Bytes free on ``device``: CUDA ``mem_get_info``; otherwise (CPU, MPS's unified memory) the
    machine's available RAM (``MemAvailable``, else free pages from ``os.sysconf``)."""
    dev = torch.device(device)
    if dev.type == "cuda":
        return int(torch.cuda.mem_get_info(dev)[0])
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


def human(n: float) -> str:
    """``n`` bytes in decimal units with two significant digits: ``1.2 TB``, ``20 GB``, ``512 MB``."""
    for unit in ("B", "kB", "MB", "GB", "TB", "PB"):
        if n < 999.5 or unit == "PB":
            return f"{n:.1f} {unit}" if n < 9.95 and unit != "B" else f"{n:.0f} {unit}"
        n /= 1000
    raise AssertionError("unreachable")


def _leaf_outputs(run: Callable[[], Any]) -> tuple[int, int]:
    """(sum, largest) of the values of every leaf module's output while ``run()`` runs."""
    seen = [0, 0]

    def hook(module: nn.Module, args: Any, out: Any) -> None:
        if next(module.children(), None) is None:
            for o in out if isinstance(out, (tuple, list)) else (out,):
                if isinstance(o, torch.Tensor):
                    seen[0] += o.numel()
                    seen[1] = max(seen[1], o.numel())

    handle = nn.modules.module.register_module_forward_hook(hook)
    try:
        run()
    finally:
        handle.remove()
    return seen[0], seen[1]


def _meta_networks(model: ModelConfig) -> dict[str, nn.Module]:
    from retarget.nn.networks import build_networks  # not at import: retarget.nn loads the trainer's step

    with torch.device("meta"):
        return build_networks(model)


def _params(nets: dict[str, nn.Module]) -> int:
    return sum(p.numel() for net in nets.values() for p in net.parameters())


@lru_cache(maxsize=128)
def model_counts(model: ModelConfig, loss: LossConfig = LossConfig()) -> tuple[int, int]:
    """(parameters, activation values per sample) of one training step of ``model``.

    The activations are the leaf-module outputs of the objective's generator pass (its
    graph is alive at the step's peak: the discriminator pass comes after its backward)
    for one sample. The warp term, gradient penalty and content networks use no
    parameters of ours and are left out of the count.
    """
    from retarget.nn.objectives import frames_per_sample, make_objective

    nets = _meta_networks(model)
    counted = dataclasses.replace(
        loss, warp=0.0, gp=0.0, content=0.0, content_model=None, content_model_a=None, content_model_b=None
    )
    objective = make_objective(model, counted, nets)
    shape = (1, frames_per_sample(model), 3, model.size, model.size)
    if model.domains:
        batch = {"x": torch.zeros(shape, device="meta")}
        batch.update(src=torch.zeros(1, dtype=torch.long, device="meta"))
        batch.update(dst=torch.ones(1, dtype=torch.long, device="meta"))
    else:
        batch = {"A": torch.zeros(shape, device="meta"), "B": torch.zeros(shape, device="meta")}
    total, _ = _leaf_outputs(lambda: objective.generator_terms(batch))
    return _params(nets), total


def train_bytes(cfg: TrainConfig) -> int:
    """Bytes a training step of ``cfg`` holds at its peak: every network's parameters with
    their gradients and Adam state, and ``batch_size`` samples' activations."""
    params, acts = model_counts(cfg.model, cfg.loss)
    return int(OVERHEAD + params * PARAM_BYTES + acts * cfg.batch_size * ACT_BYTES)


@lru_cache(maxsize=128)
def generator_counts(model: ModelConfig, height: int, width: int) -> tuple[int, int]:
    """(parameters, values of the largest layer output) of the generator on one ``height x width`` picture."""
    nets = _meta_networks(model)
    gen = nets["G"] if model.domains else nets["G_AB"]
    x = torch.zeros(1, 3, height, width, device="meta")
    args = (torch.zeros(1, dtype=torch.long, device="meta"),) if model.domains else ()
    _, largest = _leaf_outputs(lambda: gen(x, *args))
    return sum(p.numel() for p in gen.parameters()), largest


def render_bytes(model: ModelConfig, picture: tuple[int, int], batch_size: int, tile: Optional[int] = None) -> int:
    """Bytes of render's translate stage: ``batch_size`` pictures of ``picture`` = (width, height)
    in flight (uint8 copies, and with ``tile`` the float32 blend buffers) and the generator's
    inference on a batch of them, or of ``tile x tile`` windows."""
    w, h = (-(-side // 4) * 4 for side in picture)  # padded to multiples of 4
    per_picture = w * h * 3 * PICTURE_COPIES
    if tile and (w > tile or h > tile):
        w, h = min(w, tile // 4 * 4), min(h, tile // 4 * 4)
        per_picture += picture[0] * picture[1] * 16  # accumulated float32 RGB and weights
    params, largest = generator_counts(model, h, w)
    return int(OVERHEAD + params * 4 + batch_size * (per_picture + largest * RENDER_BYTES))


def enhancer_bytes(cfg: EnhancerConfig, frame_side: int, frames: int) -> int:
    """Bytes of enhancer training: the frames kept (uint8, ``frame_side`` px square, at most
    ``max_frames``), parameters with Adam state, and ``batch_size`` patches' activations."""
    from retarget.nn.enhancer import FaceEnhancer

    with torch.device("meta"):
        net = FaceEnhancer(cfg.scale, cfg.width, cfg.blocks)
    side = max(1, cfg.patch // cfg.scale)
    acts, _ = _leaf_outputs(lambda: net(torch.zeros(1, 3, side, side, device="meta")))
    kept = min(frames, cfg.max_frames) * frame_side * frame_side * 3
    params = sum(p.numel() for p in net.parameters())
    return int(OVERHEAD + kept + params * PARAM_BYTES + cfg.batch_size * acts * ENHANCER_ACT_BYTES)


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


def _largest(fits: Callable[[int], bool], low: int, high: int, unit: int) -> Optional[int]:
    """The largest multiple of ``unit`` in [``low``, ``high``] for which ``fits`` (monotone) holds; None if none."""
    lo, hi = -(-low // unit), high // unit
    if lo > hi or not fits(lo * unit):
        return None
    while lo < hi:
        mid = (lo + hi + 1) // 2
        lo, hi = (mid, hi) if fits(mid * unit) else (lo, mid - 1)
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
        low = k.default if k in raised else k.low
        best = _largest(lambda v, k=k: estimate(k.put(cfg, v)) <= available, low, value - 1, k.unit)
        if best is not None:
            raise RetargetError(f"{k.flag} {value}: {head}; at most {k.flag} {best} fits")
    named = raised or list(knobs)
    flags = " ".join(f"{k.flag} {k.get(cfg)}" for k in named)
    raise RetargetError(f"{flags}: {head}; lower {' and '.join(k.flag for k in named)}")


def _where(device: torch.device | str) -> str:
    return "this GPU" if torch.device(device).type == "cuda" else "this machine"


def _model_knob(flag: str, name: str, **kw: Any) -> Knob:
    def put(c: TrainConfig, v: int) -> TrainConfig:
        return dataclasses.replace(c, model=dataclasses.replace(c.model, **{name: v}))

    return Knob(flag, lambda c: getattr(c.model, name), put, getattr(ModelConfig, name), **kw)


def _field_knob(flag: str, name: str, default: int, **kw: Any) -> Knob:
    return Knob(flag, lambda c: getattr(c, name), lambda c, v: dataclasses.replace(c, **{name: v}), default, **kw)


def check_train(cfg: TrainConfig, device: torch.device | str = "cpu", available: Optional[int] = None) -> None:
    """RetargetError when training ``cfg`` cannot fit in ``device``'s free memory (``available`` bytes
    when given); call it after the architecture checks and before the run folder is made."""
    size_unit = 2**cfg.model.p_depth if cfg.model.model == "recycle" else 4
    knobs = [
        _field_knob("--batch-size", "batch_size", TrainConfig.batch_size),
        _model_knob("--size", "size", low=max(size_unit, 2 ** (cfg.model.d_layers + 2)), unit=size_unit),
        _model_knob("--ngf", "ngf"),
        _model_knob("--ndf", "ndf"),
        _model_knob("--npf", "npf"),
        _model_knob("--blocks", "blocks"),
    ]
    free = available_memory(device) if available is None else available
    refuse(cfg, train_bytes, knobs, free, _where(device))


def check_enhancer(
    cfg: EnhancerConfig,
    frame_side: int,
    frames: int,
    device: torch.device | str = "cpu",
    available: Optional[int] = None,
) -> None:
    """RetargetError when ``train-enhancer`` with ``cfg`` on a dataset of ``frames`` frames of
    ``frame_side`` px cannot fit (on CUDA the GPU's memory: the frames kept stay in RAM and are not counted)."""
    dev = torch.device(device)
    knobs = [
        _field_knob("--batch-size", "batch_size", EnhancerConfig.batch_size),
        _field_knob("--patch", "patch", EnhancerConfig.patch, low=16, unit=cfg.scale),
        _field_knob("--width", "width", EnhancerConfig.width, low=4),
        _field_knob("--max-frames", "max_frames", EnhancerConfig.max_frames),
    ]

    def estimate(c: EnhancerConfig) -> int:
        return enhancer_bytes(c, frame_side, frames if dev.type != "cuda" else 0)

    free = available_memory(dev) if available is None else available
    refuse(cfg, estimate, knobs, free, _where(dev))


def check_extract(cfg: ExtractConfig, frames: Sequence[tuple[int, int]], available: Optional[int] = None) -> None:
    """RetargetError when extracting videos of ``frames`` (width, height) with ``cfg`` cannot fit in RAM."""
    knobs = [
        _field_knob("--size", "size", ExtractConfig.size, low=16),
        _field_knob("--workers", "workers", ExtractConfig.workers),
    ]
    free = available_memory("cpu") if available is None else available
    refuse(cfg, lambda c: extract_bytes(c, frames), knobs, free)


@dataclass(frozen=True)
class _Render:
    side: int
    batch_size: int


def render_budget(
    model: ModelConfig,
    width: int,
    height: int,
    side: int,
    batch_size: int,
    tile: Optional[int] = None,
    device: torch.device | str = "cpu",
    *,
    frame: str = "full",
    crop: Optional[tuple[int, int, int, int]] = None,
    available: Optional[int] = None,
) -> None:
    """RetargetError when render's translate stage cannot fit in ``device``'s free memory.

    Args:
        model: the run's architecture.
        width, height: the source video's frame size.
        side: the generator's picture: short side of the whole frame (``frame="full"``), side of
            its centre square (``"square"``), or of the face crop (``"face"``: not an option).
        batch_size, tile: ``--batch-size``, ``--tile``.
        crop: the training data's ``--crop`` region, if any.
    """
    from retarget.geometry import frame_cut

    def estimate(r: _Render) -> int:
        picture = (r.side, r.side) if frame == "face" else frame_cut(frame, width, height, r.side, crop).size
        return render_bytes(model, picture, r.batch_size, tile)

    knobs = [] if frame == "face" else [_field_knob("--scale", "side", side, low=16, unit=4)]
    knobs.append(_field_knob("--batch-size", "batch_size", 8))
    free = available_memory(device) if available is None else available
    refuse(_Render(side, batch_size), estimate, knobs, free, _where(device))


_TRIED = re.compile(r"(?:allocate|alloc)\w*\s+(\d+)\s*bytes|Tried to allocate ([\d.]+) ([KMGT]i?B)", re.I)
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
    if match and match.group(1):
        tried = f" ({human(int(match.group(1)))} requested)"
    elif match:
        tried = f" ({match.group(2)} {match.group(3)} requested)"
    return RetargetError(
        f"out of memory{tried}: lower --size, --scale, --batch-size or the network width (--ngf, --width)"
    )
