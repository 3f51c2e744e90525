"""The checkpoint format: safetensors weights and a tensors-only training state.

A checkpoint is one folder, ``RUN/checkpoints/step_NNNNNNN/``, holding (see
docs/checkpoints.md):

- ``weights.safetensors``: every network's ``state_dict`` under ``<net>.<param>`` keys;
  its metadata carries the ``ModelConfig`` JSON, the step and the
  :class:`~retarget.run.info.DataInfo` of both domains (of every domain, keyed by name,
  with the names in label order under ``domains``, for a multi-domain model), so the
  file alone rebuilds its networks and tells render how the training frames were cut;
- ``state.pt``: optimizers, LR schedulers, step, RNG states, image pools; written with
  ``torch.save`` from tensors, numbers, strings, lists and dicts only and read back
  with ``torch.load(weights_only=True)``, which never unpickles arbitrary objects.

Both files are written into a temporary folder, which one rename turns into the step
folder (:func:`write_checkpoint`), so a checkpoint is all or nothing: a kill at any
moment leaves either the complete new folder or none, and the previous checkpoint is
untouched until the new one is complete. :func:`latest_checkpoint` finds the newest
complete one; runs written before this layout (``weights.safetensors`` and ``state.pt``
directly in the run folder) are still found.
"""

from __future__ import annotations

import json
import os
import random
from pathlib import Path
from typing import Any, Mapping, Optional, Sequence

import numpy as np
import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file

from retarget.atomic import atomic_dir, atomic_file, discard, write_error
from retarget.config import ModelConfig, from_dict, to_json
from retarget.errors import RetargetError
from retarget.run.info import DataInfo, data_to_json
from retarget.run.layout import CHECKPOINTS, STATE, WEIGHTS, checkpoint_dir, parse_step

FORMAT = "retarget-weights/1"
#: Metadata key of a multi-domain model's domain names (a JSON list, label order).
DOMAINS = "domains"


def save_weights(
    path: str | os.PathLike[str],
    networks: dict[str, torch.nn.Module],
    model_cfg: ModelConfig,
    step: int,
    data: Optional[Mapping[str, DataInfo | Mapping[str, Any]]] = None,
    domains: Sequence[str] = (),
    tensors: Optional[dict[str, torch.Tensor]] = None,
) -> None:
    """Write every network's parameters and buffers to one safetensors file, atomically.

    Args:
        path: target ``.safetensors`` file.
        networks: name -> module (DDP wrappers are unwrapped by the caller).
        model_cfg: stored as JSON in the metadata so the file rebuilds its networks.
        step: steps done, stored in the metadata.
        data: ``{"A": DataInfo, "B": DataInfo}`` for render (plain dicts are converted); for
            a multi-domain model one entry per domain name.
        domains: a multi-domain model's domain names in label order (label ``k`` is
            ``domains[k]``), stored as the ``domains`` metadata (a JSON list); () for a pair.
        tensors: :func:`network_tensors` of ``networks`` when the caller already has them.

    Raises:
        RetargetError: a weight is NaN or infinite (naming the file and the tensor; nothing is written).
    """
    tensors = network_tensors(networks) if tensors is None else tensors
    check_finite(tensors, path)
    _save_tensors(path, tensors, list(networks), model_cfg, step, data, domains)


def network_tensors(networks: Mapping[str, torch.nn.Module]) -> dict[str, torch.Tensor]:
    """Every network's parameters and buffers on the CPU, under ``<net>.<param>`` keys."""
    tensors: dict[str, torch.Tensor] = {}
    for name, net in networks.items():
        for key, value in net.state_dict().items():
            # serialised at once: CPU tensors need no copy (``.to`` returns them as they are)
            tensors[f"{name}.{key}"] = value.detach().to("cpu").contiguous()
    return tensors


def check_finite(tensors: Mapping[str, torch.Tensor], path: str | os.PathLike[str], saving: bool = True) -> None:
    """RetargetError naming ``path`` and the first tensor holding NaN or infinity.

    Args:
        tensors: name -> tensor; integer tensors (counters) are always finite.
        path: the file being written or read, for the message.
        saving: the message says nothing was written (else that the file cannot be used).
    """
    for key, value in tensors.items():
        if value.is_floating_point() or value.is_complex():
            if not bool(torch.isfinite(value).all()):
                what = "nan" if bool(torch.isnan(value).any()) else "inf"
                if saving:
                    tail = "not written (training diverged: try a lower --lr)"
                else:
                    tail = "the weights are damaged or diverged and cannot be used"
                raise RetargetError(f"{path}: tensor {key} is not finite ({what}); {tail}")


def _save_tensors(
    path: str | os.PathLike[str],
    tensors: dict[str, torch.Tensor],
    names: Sequence[str],
    model_cfg: ModelConfig,
    step: int,
    data: Optional[Mapping[str, DataInfo | Mapping[str, Any]]],
    domains: Sequence[str],
) -> None:
    """Write checked tensors of the networks ``names`` and their metadata to ``path``, atomically."""
    meta = {
        "format": FORMAT,
        "model_config": to_json(model_cfg),
        "networks": ",".join(names),
        "step": str(int(step)),
        "data": data_to_json(data or {}),
    }
    if domains:
        meta[DOMAINS] = json.dumps(list(domains))
    with atomic_file(path) as tmp:
        save_file(tensors, str(tmp), metadata=meta)


def read_weights(path: str | os.PathLike[str]) -> tuple[dict[str, str], dict[str, torch.Tensor]]:
    """Metadata and tensors of a weights file; RetargetError if it is not one of ours."""
    return _read(Path(path), tensors=True)  # type: ignore[return-value]


def read_metadata(path: str | os.PathLike[str]) -> dict[str, str]:
    """The metadata of a weights file alone (its header: no tensor is read); RetargetError if it is not one of ours."""
    return _read(Path(path), tensors=False)[0]


def _read(path: Path, tensors: bool) -> tuple[dict[str, str], Optional[dict[str, torch.Tensor]]]:
    try:
        with safe_open(str(path), framework="pt", device="cpu") as f:
            meta = dict(f.metadata() or {})
            values = {k: f.get_tensor(k) for k in f.keys()} if tensors else None
    except (SafetensorError, OSError, ValueError) as exc:
        raise RetargetError(f"{path}: not a readable safetensors file ({str(exc).splitlines()[0][:120]})") from None
    if meta.get("format") != FORMAT or "model_config" not in meta:
        raise RetargetError(f"{path}: not a retarget checkpoint (no model configuration in its metadata)")
    try:
        model_config_of(meta)
        int(meta.get("step", 0))
    except (ValueError, TypeError) as exc:
        raise RetargetError(f"{path}: damaged checkpoint metadata ({str(exc).splitlines()[0][:120]})") from None
    return meta, values


def domains_of(meta: Mapping[str, str]) -> tuple[str, ...]:
    """The domain names of a multi-domain model's weights metadata, in label order; () for a pair or when absent."""
    try:
        names = json.loads(meta.get(DOMAINS) or "[]")
    except ValueError:
        return ()
    return tuple(str(n) for n in names) if isinstance(names, list) else ()


def model_config_of(meta: dict[str, str]) -> ModelConfig:
    """The :class:`ModelConfig` stored in a weights file's metadata."""
    return from_dict(ModelConfig, json.loads(meta["model_config"]))


def load_into(
    networks: dict[str, torch.nn.Module], tensors: dict[str, torch.Tensor], path: str | os.PathLike[str]
) -> None:
    """Copy saved tensors into ``networks``; RetargetError naming ``path`` on any mismatch or a
    NaN or infinite weight (only the tensors of ``networks`` are checked)."""
    for name, net in networks.items():
        prefix = f"{name}."
        sd = {k[len(prefix) :]: v for k, v in tensors.items() if k.startswith(prefix)}
        if not sd:
            raise RetargetError(f"{path}: has no weights for network {name}")
        check_finite({prefix + k: v for k, v in sd.items()}, path, saving=False)
        try:
            net.load_state_dict(sd, strict=True)
        except RuntimeError as exc:
            first = str(exc).splitlines()[0] if str(exc) else "shape mismatch"
            raise RetargetError(f"{path}: weights do not fit network {name} ({first[:150]})") from None


# --- training state -------------------------------------------------------------------


def rng_state() -> dict[str, Any]:
    """RNG states of torch (CPU and the current CUDA device), numpy's global and python's ``random``, as tensors.

    Only the current GPU's state is kept: a rank draws on its own GPU alone, and a
    checkpoint must resume on another number of visible GPUs (an 8-GPU run on one, a
    run under per-rank CUDA_VISIBLE_DEVICES).
    """
    np_state = np.random.get_state()
    py_state = random.getstate()
    out: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "numpy_keys": torch.from_numpy(np.asarray(np_state[1], dtype=np.int64)),
        "numpy_pos": int(np_state[2]),
        "numpy_gauss": [int(np_state[3]), float(np_state[4])],
        "python": torch.tensor(py_state[1], dtype=torch.int64),
        "python_version": int(py_state[0]),
        "python_gauss": py_state[2],
    }
    if torch.cuda.is_available():
        out["cuda"] = torch.cuda.get_rng_state()  # of torch.cuda.current_device()
    return out


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore what :func:`rng_state` returned."""
    torch.set_rng_state(state["torch"])
    np.random.set_state(
        ("MT19937", state["numpy_keys"].numpy().astype(np.uint32), state["numpy_pos"], *state["numpy_gauss"])
    )
    random.setstate((state["python_version"], tuple(int(v) for v in state["python"].tolist()), state["python_gauss"]))
    cuda = state.get("cuda")
    if cuda is None or not torch.cuda.is_available():
        return
    if isinstance(cuda, (list, tuple)):  # older checkpoints kept every visible GPU's state
        here = torch.cuda.current_device()
        cuda = cuda[here] if here < len(cuda) else (cuda[0] if cuda else None)
    if cuda is not None:
        torch.cuda.set_rng_state(cuda)  # on torch.cuda.current_device()


def load_state(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read a training state with ``weights_only=True``; RetargetError if unreadable."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise RetargetError(f"{path}: training state not found; cannot resume this run") from None
    except Exception as exc:  # pickle/zip errors come in many types
        raise RetargetError(f"{path}: unreadable training state ({type(exc).__name__})") from None


# --- checkpoint folders -----------------------------------------------------------------


def _is_complete(folder: Path) -> bool:
    return (folder / WEIGHTS).is_file() and (folder / STATE).is_file()


def checkpoint_steps(run_dir: str | os.PathLike[str]) -> list[int]:
    """Steps of the complete checkpoints in ``RUN/checkpoints/``, oldest first.

    A step folder appears only by the rename that ends :func:`write_checkpoint`, so
    every ``step_N`` folder holding both files is complete; temporary folders of a save
    in progress, or of one killed, are never listed. ``[]`` for a missing folder and for
    runs of the old layout (see :func:`latest_checkpoint`).
    """
    root = Path(run_dir) / CHECKPOINTS
    try:
        names = os.listdir(root)
    except OSError:
        return []
    steps = [s for n in names if (s := parse_step(n)) is not None]
    return sorted(s for s in steps if _is_complete(checkpoint_dir(run_dir, s)))


def latest_checkpoint(run_dir: str | os.PathLike[str]) -> Optional[Path]:
    """The folder holding ``weights.safetensors`` and ``state.pt`` of the newest complete checkpoint.

    That is ``RUN/checkpoints/step_N`` of the largest N; for a run of the old layout
    (both files directly in the run folder, no step folders) the run folder itself;
    None when the folder holds no complete checkpoint (it is then not a run: training
    starts afresh in it).
    """
    steps = checkpoint_steps(run_dir)
    if steps:
        return checkpoint_dir(run_dir, steps[-1])
    return Path(run_dir) if _is_complete(Path(run_dir)) else None


def is_run(run_dir: str | os.PathLike[str]) -> bool:
    """Whether ``run_dir`` holds a complete checkpoint (so ``train --resume`` can continue it)."""
    return latest_checkpoint(run_dir) is not None


def write_checkpoint(
    run_dir: str | os.PathLike[str],
    step: int,
    networks: dict[str, torch.nn.Module],
    model_cfg: ModelConfig,
    state: dict[str, Any],
    data: Optional[Mapping[str, DataInfo | Mapping[str, Any]]] = None,
    domains: Sequence[str] = (),
) -> Path:
    """Write the checkpoint of ``step`` all at once; return its folder.

    Both files go into a temporary folder beside the step folders (named by
    :mod:`retarget.atomic`, so a leftover of a killed save is removed by the next
    start); one rename then makes it ``RUN/checkpoints/step_N``. Until that rename the
    previous checkpoint is the newest complete one; an existing folder of the same step
    is replaced only once the new one is complete. The files and folders are fsynced
    around the rename, so a complete checkpoint also survives a power cut.

    Raises:
        RetargetError: a weight is NaN or infinite (nothing is written), or the disk is
            full, read-only or denies the write (one line naming the file; nothing is left
            under the step folder's name).
    """
    final = checkpoint_dir(run_dir, step)
    tensors = network_tensors(networks)
    check_finite(tensors, final / WEIGHTS)  # before anything is written
    name = WEIGHTS
    try:
        with atomic_dir(final, replace=True, durable=True) as tmp:
            save_weights(tmp / WEIGHTS, networks, model_cfg, step, data, domains, tensors=tensors)
            name = STATE
            _torch_save(state, tmp / STATE)
    except Exception as exc:
        err = write_error(final / name, exc)
        if err is None:
            raise
        raise err from None
    return final


def _torch_save(obj: Any, path: Path) -> None:
    torch.save(obj, path)


def prune_checkpoints(run_dir: str | os.PathLike[str], keep: int) -> list[int]:
    """Delete all but the newest checkpoint and the ``keep`` before it; return the steps deleted.

    A run of the old layout that has been continued in step folders loses its
    top-level files the same way, as the oldest checkpoint. Each step folder is renamed
    to a temporary name before it is deleted, so a kill mid-way never leaves a partial
    folder under a step name.
    """
    steps = checkpoint_steps(run_dir)
    old = steps[: max(0, len(steps) - 1 - max(0, keep))]
    for s in old:
        discard(checkpoint_dir(run_dir, s))
    root = Path(run_dir)
    if steps and len(steps) > keep and _is_complete(root):  # old layout, superseded
        for file in (STATE, WEIGHTS):
            (root / file).unlink(missing_ok=True)
    return old
