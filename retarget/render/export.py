"""``retarget export``: a run's translator as an ONNX file, and :class:`OnnxTranslator` to render with it.

The file holds one generator (a pair's ``G_AB`` or ``G_BA``, or a multi-domain run's
``G`` with its target fixed, :class:`~retarget.nn.conditional.FixedTarget`) with its
weights, exported by torch's TorchScript-based exporter (``dynamo=False``: no
``onnxscript`` needed). Its contract:

- input ``"input"``: float32 ``[N, 3, H, W]``, RGB, ``pixel / 127.5 - 1`` (range [-1, 1]);
  ``N``, ``H`` and ``W`` are dynamic, but ``H`` and ``W`` must be multiples of
  :data:`~retarget.render.translate.MULTIPLE` (4: two stride-2 down-samplings);
  reflect-pad and crop back otherwise, as render does;
- output ``"output"``: the translation, same shape and range (``(y + 1) * 127.5`` -> pixels).

Its ``metadata_props`` say how the run's training data saw the pictures, so another
program can cut its input alike (:func:`run_metadata`, read back with :func:`read_metadata`).
onnx and onnxruntime are an optional extra: ``pip install 'retarget[onnx]'``.
"""

from __future__ import annotations

import io
import json
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from retarget.config import ExportConfig, RenderConfig
from retarget.errors import RetargetError

__all__ = ["ExportSummary", "OnnxTranslator", "export_run", "onnx_bytes", "read_metadata", "run_metadata"]

INPUT, OUTPUT = "input", "output"
#: A side the generator needs is a multiple of this (see :mod:`retarget.render.translate`).
MULTIPLE = 4


def require_onnx(why: str = "ONNX export") -> None:
    """RetargetError naming the extra when onnx or onnxruntime is missing."""
    try:
        import onnx  # noqa: F401
        import onnxruntime  # noqa: F401
    except ImportError as exc:
        raise RetargetError(
            f"{why} needs onnx and onnxruntime ({exc.name} is missing): pip install 'retarget[onnx]'"
        ) from None


def onnx_bytes(net: Any, metadata: dict[str, str] | None = None, opset: int = 17) -> bytes:
    """``net`` (float ``[N, 3, H, W]`` in [-1, 1] -> the same) as a serialized ONNX model, dynamic N, H, W."""
    import onnx
    import torch

    try:  # checked before the export, which prints its whole graph when it fails
        from torch.onnx._constants import ONNX_MAX_OPSET as newest
    except ImportError:  # a torch that moved it: its export's own error
        newest = opset
    if opset > newest:
        raise RetargetError(f"--opset {opset}: torch {torch.__version__} exports opsets up to {newest}")
    net = net.eval().float().cpu()
    x = torch.zeros(1, 3, 4 * MULTIPLE, 4 * MULTIPLE)
    dynamic = {0: "batch", 2: "height", 3: "width"}
    buffer = io.BytesIO()
    with warnings.catch_warnings(), torch.no_grad():
        # the legacy exporter's deprecation notes and trace notes about the padding are not the user's concern
        warnings.simplefilter("ignore")
        torch.onnx.export(
            net, (x,), buffer, dynamo=False, opset_version=opset, input_names=[INPUT], output_names=[OUTPUT],
            dynamic_axes={INPUT: dynamic, OUTPUT: dynamic},
        )  # fmt: skip
    model = onnx.load_from_string(buffer.getvalue())
    for key, value in (metadata or {}).items():
        prop = model.metadata_props.add()
        prop.key, prop.value = key, value
    return model.SerializeToString()


def run_metadata(run: Any, way: Any, data: Any) -> dict[str, str]:
    """The ``metadata_props`` of a run's exported translator: all strings, JSON where structured.

    ``normalization``, ``layout``, ``multiple``, ``size`` (crop side, px), ``align``,
    ``frame``, ``scale`` (short side of whole frames, px; 0 = unknown), ``crop``, ``face``
    (extract's face options, JSON, face runs), ``domains`` (JSON list), ``source`` and
    ``target`` (domain names), ``direction``, ``network``, ``step``, ``retarget_version``.
    """
    from retarget import __version__
    from retarget.config import to_dict

    if run.domains:
        domains = list(run.domains)
        target = domains[way.target]
    else:
        names = [run.data_of("A").name or "A", run.data_of("B").name or "B"]
        domains, target = names, names[1] if way.network == "G_AB" else names[0]
    return {
        "normalization": "x = rgb / 127.5 - 1 (float32, range [-1, 1]); rgb = (y + 1) * 127.5",
        "layout": "NCHW RGB",
        "multiple": str(MULTIPLE),
        "size": str(data.size or run.model_cfg.size),
        "align": data.align,
        "frame": data.frame,
        "scale": str(data.scale or 0),
        "crop": json.dumps(list(data.crop) if data.crop else None),
        "face": json.dumps(to_dict(data.face) if data.face else None),
        "domains": json.dumps(domains),
        "source": data.name or way.source,
        "target": target,
        "direction": way.text,
        "network": way.network,
        "step": str(run.step),
        "retarget_version": __version__,
    }


def read_metadata(path: str | Path) -> dict[str, str]:
    """The ``metadata_props`` of an ONNX file, as a dict.

    Raises:
        RetargetError: the file is missing or not an ONNX model.
    """
    require_onnx("reading an ONNX file")
    import onnx

    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception as exc:  # onnx raises DecodeError, OSError...
        raise RetargetError(f"{path}: not a readable ONNX file ({type(exc).__name__})") from None
    return {p.key: p.value for p in model.metadata_props}


@dataclass(frozen=True)
class ExportSummary:
    """What :func:`export_run` wrote."""

    output: str
    direction: str
    metadata: dict[str, str]
    bytes: int
    seconds: float


def _check_output(cfg: ExportConfig, run_dir: Path) -> Path:
    """The .onnx path to write, by the one output rule (:func:`retarget.outputs.check_output`): not empty,
    not a folder, not in the run, not another command's product, writable, replaced only with overwrite."""
    from retarget.outputs import check_output

    if cfg.output.strip() and Path(cfg.output).suffix.lower() != ".onnx":
        raise RetargetError(f"{cfg.output}: give a file name ending in .onnx")
    return check_output(cfg.output, kind="onnx", inputs=(run_dir,), overwrite=cfg.overwrite, option="-o")


def export_run(cfg: ExportConfig) -> ExportSummary:
    """Write the translator of run ``cfg.model`` (its direction or ``--to`` target) to ``cfg.output``.

    Raises:
        RetargetError: onnx missing, no such run, an unknown domain, a bad output path.
    """
    from retarget.atomic import atomic_file, write_errors
    from retarget.options import check_config
    from retarget.progress import console
    from retarget.render.direction import pick_direction
    from retarget.run import load_networks, open_run

    check_config(cfg)
    require_onnx()
    started = time.perf_counter()
    run = open_run(cfg.model, step=cfg.step)
    out = _check_output(cfg, run.run_dir)
    pick = RenderConfig("", "", direction=cfg.direction, to_domain=cfg.to_domain, from_domain=cfg.from_domain)
    way = pick_direction(run, pick)
    load_networks(run, (way.network,), "cpu")
    net = run.networks[way.network]
    if way.target is not None:
        from retarget.nn.conditional import FixedTarget

        net = FixedTarget(net, way.target)
    metadata = run_metadata(run, way, run.data_of(way.source))
    blob = onnx_bytes(net, metadata, cfg.opset)
    with write_errors(out):
        out.parent.mkdir(parents=True, exist_ok=True)
        with atomic_file(out) as tmp:
            tmp.write_bytes(blob)
    summary = ExportSummary(str(out), way.text, metadata, len(blob), time.perf_counter() - started)
    console.print(
        f"wrote {out}: {run.path} ({way.text}, step {run.step}), {metadata['align']} "
        f"{metadata['size']} px, {len(blob) / 1e6:.1f} MB",
        markup=False,
    )
    return summary


class OnnxTranslator:
    """:class:`~retarget.render.translate.Translator`'s call on onnxruntime: uint8 crops -> translated crops.

    Args:
        model: an ONNX file's path or its bytes (:func:`onnx_bytes`).
        device: ``"cuda"`` uses onnxruntime's CUDA provider where it has one; else the CPU's.
        threads: onnxruntime's intra-op threads; 0 lets it choose.
    """

    amp = "off"  # onnxruntime runs the exported float32 graph

    def __init__(self, model: str | Path | bytes, device: str = "cpu", threads: int = 0) -> None:
        require_onnx("--engine onnx")
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = max(0, int(threads))
        providers = ["CPUExecutionProvider"]
        if device == "cuda" and "CUDAExecutionProvider" in ort.get_available_providers():
            providers.insert(0, "CUDAExecutionProvider")
        source = model if isinstance(model, bytes) else str(model)
        self.session = ort.InferenceSession(source, options, providers=providers)
        self.provider = self.session.get_providers()[0]

    def __call__(self, crops: Sequence[np.ndarray]) -> list[np.ndarray]:
        """Translate ``crops`` (each H x W x 3 uint8 RGB, sides multiples of 4); same count and shape."""
        if not crops:
            return []
        x = np.stack(crops).transpose(0, 3, 1, 2).astype(np.float32) / np.float32(127.5) - np.float32(1.0)
        (y,) = self.session.run([OUTPUT], {INPUT: np.ascontiguousarray(x)})
        y = np.clip(np.rint((y + 1.0) * 127.5), 0, 255).astype(np.uint8)
        return list(np.ascontiguousarray(y.transpose(0, 2, 3, 1)))
