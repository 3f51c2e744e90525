"""Extract, train, render in one go: the path the examples and the demo share.

Each stage takes a *template* config (the options the caller cares about) and fills in
the paths: datasets go to ``<out>/data/A`` and ``<out>/data/B``, the run to the given
folder, the translation to the given file. Every stage replaces earlier output
(``overwrite``), as a script that is run again expects.
"""

from __future__ import annotations

from pathlib import Path
from typing import Mapping, Optional, Sequence

from retarget.config import ExtractConfig, RenderConfig, TrainConfig, replace


def extract_domains(videos: Mapping[str, Sequence[str | Path]], out: Path, template: ExtractConfig) -> dict[str, Path]:
    """Extract each domain's videos into ``<out>/data/<name>``.

    Args:
        videos: ``{"A": [...], "B": [...]}`` video paths per domain, decoded in order.
        out: the working folder.
        template: extract options (its ``videos`` and ``output`` are replaced).

    Returns:
        ``{"A": dataset folder, "B": dataset folder}``.
    """
    from retarget.dataset.extract import extract

    folders = {}
    for name, paths in videos.items():
        folder = Path(out) / "data" / name
        extract(replace(template, videos=tuple(str(p) for p in paths), output=str(folder), overwrite=True))
        folders[name] = folder
    return folders


def train_on(data: Mapping[str, Path], run_dir: Path, template: TrainConfig):  # -> TrainResult
    """Train on ``data["A"]`` and ``data["B"]`` into ``run_dir`` (an earlier run there is replaced)."""
    from retarget.train.launch import train

    cfg = replace(template, a_dir=str(data["A"]), b_dir=str(data["B"]), out=str(run_dir), overwrite=True, resume=False)
    return train(cfg)


def render_with(run_dir: Path, source: str | Path, output: Path, template: Optional[RenderConfig] = None):
    """Translate ``source`` into ``output`` with the run in ``run_dir``; returns the RenderSummary."""
    from retarget.render.render import render

    template = template or RenderConfig(input="", output="")
    return render(replace(template, input=str(source), output=str(output), model=str(run_dir), overwrite=True))


def run_pipeline(
    a_videos: Sequence[str | Path],
    b_videos: Sequence[str | Path],
    source: str | Path,
    out: Path,
    *,
    extract_cfg: ExtractConfig,
    train_cfg: TrainConfig,
    render_cfg: Optional[RenderConfig] = None,
) -> Path:
    """Extract A and B, train ``<out>/run``, render ``source`` to ``<out>/<source stem>_as_B.mp4``.

    Returns:
        the translated video's path.

    Raises:
        RetargetError: from any stage, naming the file and the problem.
    """
    out = Path(out)
    data = extract_domains({"A": a_videos, "B": b_videos}, out, extract_cfg)
    train_on(data, out / "run", train_cfg)
    result = out / f"{Path(source).stem}_as_B.mp4"
    render_with(out / "run", source, result, render_cfg)
    return result
