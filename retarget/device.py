"""Devices and mixed precision: the one ``--device`` resolver and the one ``--amp`` resolver.

Used by training (:mod:`retarget.train.launch`, one device per DDP rank), the
optimisation step (:mod:`retarget.nn.step`) and render (:mod:`retarget.render.render`).

``--amp auto`` (the default of train and render) picks, per device:

- CUDA: bf16 where the GPU computes it natively (compute capability 8.0 and up:
  Ampere, Hopper, ...), else fp16 (Volta/Turing tensor cores; training adds a
  GradScaler);
- CPU: bf16 where the CPU has native bf16 instructions (x86 AVX512-BF16 or AMX-BF16,
  Arm BF16) and torch's oneDNN is built in, and the networks are wide enough for its
  bf16 kernels (generator width at least :data:`CPU_BF16_MIN_WIDTH`: the ``tiny``
  preset's 8-channel convolutions ran 0.8x as fast in bf16 on an AMD EPYC, widths
  16-64 1.4-1.9x as fast); else float32 (emulated bf16 would only add rounding, for no
  speed-up);
- MPS: float32.

``bf16``, ``fp16`` and ``off`` force the choice on CUDA and CPU (fp16 training on CPU
uses a CPU GradScaler; it is slow without native fp16); MPS supports only ``off``.
"""

from __future__ import annotations

from typing import Optional

import torch

from retarget.errors import RetargetError

#: ``--amp`` value -> autocast dtype; ``"off"`` (absent) means float32.
AMP_DTYPES: dict[str, torch.dtype] = {"bf16": torch.bfloat16, "fp16": torch.float16}
#: The values ``--amp`` takes; ``auto`` resolves to one of the others (:func:`resolve_amp`).
AMP_CHOICES = ("auto", "bf16", "fp16", "off")
#: Narrowest generator (first-layer filters) for which ``auto`` picks bf16 on a CPU: below it
#: the casts cost more than the bf16 convolutions save (measured in docs/training.md).
CPU_BF16_MIN_WIDTH = 16


def has_mps() -> bool:
    """Whether Apple's MPS backend is usable."""
    mps = getattr(torch.backends, "mps", None)
    return bool(mps and mps.is_available())


def device_kind(name: str) -> str:
    """``auto`` -> ``cuda`` > ``mps`` > ``cpu``; other names unchanged (not checked)."""
    if name == "auto":
        return "cuda" if torch.cuda.is_available() else ("mps" if has_mps() else "cpu")
    return name


def resolve_device(name: str, local_rank: int = 0) -> torch.device:
    """The torch device of a ``--device`` value.

    Args:
        name: ``auto``, ``cpu``, ``cuda`` or ``mps``; ``auto`` picks CUDA, then MPS, then CPU.
        local_rank: this process's rank on its machine; it takes that GPU (:func:`cuda_index`).

    Raises:
        RetargetError: an explicit ``cuda`` or ``mps`` that is not available, or a local
            rank without a GPU of its own.
    """
    kind = device_kind(name)
    if kind == "cuda":
        if not torch.cuda.is_available():
            raise RetargetError("--device cuda: no CUDA device is available")
        return torch.device("cuda", cuda_index(local_rank))
    if kind == "mps" and not has_mps():
        raise RetargetError("--device mps: no MPS device is available")
    return torch.device(kind)


def ranks_text(ranks: int, gpus: int) -> str:
    """The one line that refuses ``ranks`` CUDA processes on a machine with ``gpus`` visible GPUs."""
    return (
        f"{ranks} training processes on this machine but {gpus} visible GPU(s): NCCL needs a GPU per process; "
        f"start at most {gpus} (torchrun --nproc-per-node {max(gpus, 1)}), or train with --device cpu (gloo)"
    )


def cuda_index(local_rank: int, local_world: Optional[int] = None) -> int:
    """The GPU of local rank ``local_rank``: GPU ``local_rank``, one GPU per process.

    A process that sees a single GPU takes it whatever its rank (launchers such as
    ``srun --gpus-per-task 1`` bind one GPU per process through CUDA_VISIBLE_DEVICES).
    Two ranks of one NCCL group cannot share a GPU, so more processes than visible GPUs
    are refused: torchrun's ``LOCAL_WORLD_SIZE`` (``local_world``) above the GPU count,
    or a local rank beyond the GPUs when several are visible.

    Raises:
        RetargetError: :func:`ranks_text`.
    """
    gpus = torch.cuda.device_count()
    if gpus < 1 or (local_world is not None and local_world > gpus) or (gpus > 1 and local_rank >= gpus):
        raise RetargetError(ranks_text(max(local_world or 0, local_rank + 1), gpus))
    return local_rank % gpus


def cpu_has_native_bf16() -> bool:
    """Whether this CPU computes bf16 in hardware (AVX512-BF16, AMX-BF16 or Arm BF16) and oneDNN is built in."""
    if not torch.backends.mkldnn.is_available():
        return False
    capabilities = getattr(torch.cpu, "get_capabilities", None)  # torch >= 2.10
    if capabilities is not None:
        try:
            caps = capabilities()
        except Exception:  # cpuinfo could not read this CPU: fall back to oneDNN's answer
            caps = None
        if caps is not None:
            return any(bool(caps.get(k)) for k in ("avx512_bf16", "amx_bf16", "bf16", "sve_bf16"))
    try:  # older torch: oneDNN's check (true on any AVX512 CPU, emulated or not)
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def cuda_has_native_bf16(device: torch.device) -> bool:
    """Whether the GPU ``device`` computes bf16 natively (compute capability >= 8.0, or ROCm's check)."""
    if torch.version.hip:
        with torch.cuda.device(device):
            return bool(torch.cuda.is_bf16_supported())
    return torch.cuda.get_device_capability(device)[0] >= 8


def resolve_amp(amp: str, device: torch.device | str, width: Optional[int] = None) -> str:
    """The precision ``--amp amp`` means on ``device``: ``"bf16"``, ``"fp16"`` or ``"off"`` (float32).

    ``auto``: see the module docstring (``width``: the generator's first-layer filters,
    which decide on a CPU; None = wide enough); the other values are returned as given.

    Raises:
        RetargetError: an unknown value, or ``bf16``/``fp16`` on a device other than CUDA or CPU.
    """
    if amp not in AMP_CHOICES:
        raise RetargetError(f"--amp {amp}: unknown; choose one of {', '.join(AMP_CHOICES)}")
    dev = torch.device(device)
    if amp == "off":
        return "off"
    if dev.type not in ("cuda", "cpu"):
        if amp == "auto":
            return "off"
        raise RetargetError(f"--amp {amp}: mixed precision runs on CUDA and CPU only, not {dev.type}; use --amp off")
    if amp != "auto":
        return amp
    if dev.type == "cuda":
        return "bf16" if cuda_has_native_bf16(dev) else "fp16"
    wide = width is None or width >= CPU_BF16_MIN_WIDTH
    return "bf16" if wide and cpu_has_native_bf16() else "off"


def amp_dtype(amp: str, device: torch.device | str) -> Optional[torch.dtype]:
    """The autocast dtype of ``--amp amp`` on ``device`` (:func:`resolve_amp`); None means float32."""
    return AMP_DTYPES.get(resolve_amp(amp, device))


def precision_name(resolved: str) -> str:
    """How a summary line names a resolved precision: ``bf16``, ``fp16`` or ``fp32``."""
    return "fp32" if resolved == "off" else resolved
