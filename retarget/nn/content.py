"""A user's content network f for the f-constancy / task loss: |f(x) - f(G_XY(x))|_1.

f comes as a TorchScript file (``torch.jit.script(net).save(path)`` or
``torch.jit.trace``): a self-contained program that loads without the user's Python
code and without unpickling arbitrary objects. Files written by ``torch.save`` (a state
dict or a pickled module) are refused with a one-line error, never unpickled.

f takes images ``[N, 3, S, S]`` in the range named by ``norm`` and returns a float
tensor with the batch as first dimension, or a tuple/list/dict of such tensors (a
detector's heat map and box head, say). It is frozen (eval mode, no parameter
gradients) and only passes gradients back to the translation. Formula and sources:
docs/training.md.
"""

from __future__ import annotations

import re
import warnings
import zipfile
from pathlib import Path
from typing import Any, Optional

import torch
import torch.nn.functional as F
from torch import Tensor

from retarget.config import LossConfig
from retarget.errors import RetargetError

#: input ranges a content network may expect; "imagenet" is (x01 - mean) / std
NORMS = ("minus1_1", "0_1", "imagenet")
_MEAN = (0.485, 0.456, 0.406)
_STD = (0.229, 0.224, 0.225)
_PICKLE_HINT = "export it with torch.jit.script(net).save(path) (or torch.jit.trace)"


def _flatten(out: Any, where: str) -> list[Tensor]:
    """The tensors of an output (a tensor, a tuple/list or a dict of them), in a fixed order."""
    if isinstance(out, Tensor):
        return [out]
    if isinstance(out, (tuple, list)):
        return [t for o in out for t in _flatten(o, where)]
    if isinstance(out, dict):
        return [t for k in sorted(out) for t in _flatten(out[k], where)]
    raise RetargetError(
        f"{where}: returns {type(out).__name__}; it must return a tensor, or a tuple/list/dict of tensors"
    )


def _check_archive(path: Path) -> None:
    """Refuse what is not a TorchScript archive, without unpickling anything."""
    if not path.exists():
        raise RetargetError(f"content model {path}: no such file")
    if path.is_dir():
        raise RetargetError(f"content model {path}: is a folder, not a TorchScript file")
    if not zipfile.is_zipfile(path):
        with open(path, "rb") as fh:
            head = fh.read(2)
        if head[:1] == b"\x80":  # pickle protocol 2+ (legacy torch.save)
            raise RetargetError(f"content model {path}: is a pickle (torch.save), not TorchScript; {_PICKLE_HINT}")
        raise RetargetError(f"content model {path}: not a TorchScript file (not a zip archive); {_PICKLE_HINT}")
    with zipfile.ZipFile(path) as zf:
        names = zf.namelist()
    if not any(n.endswith("constants.pkl") for n in names):
        if any(n.endswith("data.pkl") for n in names):
            raise RetargetError(
                f"content model {path}: is a torch.save file (a state dict or pickled module), not TorchScript; {_PICKLE_HINT}"
            )
        raise RetargetError(f"content model {path}: a zip archive but not a TorchScript file; {_PICKLE_HINT}")


class ContentModel:
    """A frozen TorchScript network f and the input preparation it expects.

    Args:
        net: the loaded ScriptModule (on ``device``).
        path: where it came from (for messages).
        size: side f expects (px); images are resized bilinearly; None keeps their size.
        norm: ``minus1_1`` (as the networks: [-1, 1]), ``0_1`` or ``imagenet``.
    """

    def __init__(self, net: torch.jit.ScriptModule, path: str, size: Optional[int], norm: str) -> None:
        if norm not in NORMS:
            raise RetargetError(f"content model {path}: unknown normalisation {norm!r}; choose {', '.join(NORMS)}")
        self.net = net.eval()
        for p in self.net.parameters():
            p.requires_grad_(False)
        self.path, self.size, self.norm = path, size, norm

    def prepare(self, x: Tensor) -> Tensor:
        """``[N, 3, H, W]`` in [-1, 1] -> f's input ``[N, 3, S, S]`` in its range."""
        if self.size is not None and x.shape[-2:] != (self.size, self.size):
            x = F.interpolate(x, size=(self.size, self.size), mode="bilinear", align_corners=False)
        if self.norm == "minus1_1":
            return x
        x = (x + 1) * 0.5
        if self.norm == "imagenet":
            mean = x.new_tensor(_MEAN).view(1, 3, 1, 1)
            std = x.new_tensor(_STD).view(1, 3, 1, 1)
            x = (x - mean) / std
        return x

    def outputs(self, x: Tensor) -> list[Tensor]:
        """f's output tensors on images ``[N, 3, H, W]`` in [-1, 1]; each is float ``[N, ...]``."""
        try:
            out = self.net(self.prepare(x))
        except RuntimeError as exc:
            raise RetargetError(_explain(exc, self.path, x)) from None
        tensors = _flatten(out, f"content model {self.path}")
        for t in tensors:
            if not t.is_floating_point() or t.dim() == 0 or t.shape[0] != x.shape[0]:
                raise RetargetError(
                    f"content model {self.path}: an output of shape {list(t.shape)} ({t.dtype}) on {x.shape[0]} image(s); "
                    f"outputs must be float tensors with the batch as first dimension"
                )
        return tensors

    def loss(self, real: Tensor, fake: Tensor) -> Tensor:
        """Mean over f's outputs of mean |f(real) - f(fake)|; f(real) under no_grad.

        Args:
            real, fake: ``[N, 3, H, W]`` in [-1, 1]; ``fake`` carries the generator's graph.
        Returns:
            scalar float32 >= 0.
        """
        with torch.no_grad():
            target = self.outputs(real)
        pred = self.outputs(fake)
        if len(pred) != len(target) or any(p.shape != t.shape for p, t in zip(pred, target)):
            raise RetargetError(
                f"content model {self.path}: output shapes differ between an image and its translation "
                f"({_shapes(target)} vs {_shapes(pred)}); f must give same-shaped outputs for same-sized inputs"
            )
        return torch.stack([(p.float() - t.float()).abs().mean() for p, t in zip(pred, target)]).mean()


def _shapes(tensors: list[Tensor]) -> list[list[int]]:
    return [list(t.shape) for t in tensors]


def _short(exc: BaseException) -> str:
    """The gist of a (TorchScript) error: its last ``...Error: message`` line, first sentence."""
    lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
    errors = [ln for ln in lines if re.match(r"\w*(Error|Exception): ", ln)]
    line = errors[-1].split(": ", 1)[1] if errors else (lines[0] if lines else type(exc).__name__)
    line = line.split(". ")[0]
    return line if len(line) <= 200 else line[:197] + "..."


#: torch's out-of-memory error (torch.OutOfMemoryError from 2.5, the CUDA one before)
_OOM = getattr(torch, "OutOfMemoryError", torch.cuda.OutOfMemoryError)


def _explain(exc: RuntimeError, path: str, x: Tensor) -> str:
    first = _short(exc)
    text = str(exc).lower()
    if isinstance(exc, _OOM) or "out of memory" in text:  # before "cuda": an OOM names the device too
        return (
            f"content model {path}: out of memory on {x.device.type} with input {list(x.shape)} ({first}); "
            "lower --batch-size, --content-size or --size"
        )
    if "cuda" in text or "device" in text:
        return (
            f"content model {path}: fails on {x.device.type} ({first}); it holds tensors made for another device "
            "inside its code: script it without hard-coded devices (e.g. use x.device)"
        )
    return f"content model {path}: fails on input {list(x.shape)} ({first})"


def load_content_model(
    path: str, device: torch.device, size: int, content_size: Optional[int], norm: str
) -> ContentModel:
    """Load, freeze and try a TorchScript content network on ``device``.

    Args:
        path: TorchScript file.
        size: the training size; f is tried once on a ``[2, 3, S, S]`` zero batch with
            S = ``content_size`` or ``size``, so a bad file fails before training starts.

    Raises:
        RetargetError: missing file, a pickle, not TorchScript, a failing forward (a
            device mismatch gets its own message) or outputs without a batch dimension.
    """
    p = Path(path)
    _check_archive(p)
    try:
        with warnings.catch_warnings():  # torch >= 2.9 marks TorchScript deprecated; it still loads
            warnings.simplefilter("ignore", DeprecationWarning)
            net = torch.jit.load(str(p), map_location=device)
    except Exception as exc:  # corrupt archive, newer format
        first = _short(exc)
        raise RetargetError(f"content model {path}: could not load it as TorchScript ({first})") from None
    model = ContentModel(net, path, content_size, norm)
    with torch.no_grad():
        model.outputs(torch.zeros(2, 3, size, size, device=device))
    return model


def content_paths(loss: LossConfig) -> dict[str, str]:
    """``{"A": path, "B": path}`` of the directions that have a content network:
    ``content_model_a``/``_b`` where given, else ``content_model``."""
    out = {}
    for d, own in (("A", loss.content_model_a), ("B", loss.content_model_b)):
        path = own or loss.content_model
        if path:
            out[d] = path
    return out


def load_content_models(loss: LossConfig, device: torch.device, size: int) -> dict[str, ContentModel]:
    """The content networks of ``loss`` by direction (``A``: applied to a and G_AB(a)).

    Empty when ``loss.content`` is 0 or no file is given; a file shared by both
    directions is loaded once.
    """
    if loss.content <= 0:
        return {}
    loaded: dict[str, ContentModel] = {}
    out = {}
    for d, path in content_paths(loss).items():
        if path not in loaded:
            loaded[path] = load_content_model(path, device, size, loss.content_size, loss.content_norm)
        out[d] = loaded[path]
    return out


def absolute_content_paths(loss: LossConfig) -> LossConfig:
    """``loss`` with its content model paths made absolute (for config.json and resumes)."""
    import dataclasses

    fix = {
        k: str(Path(v).resolve())
        for k in ("content_model", "content_model_a", "content_model_b")
        if (v := getattr(loss, k))
    }
    return dataclasses.replace(loss, **fix) if fix else loss
