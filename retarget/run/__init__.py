"""Runs: the run folder's names and files, the checkpoint format, loading a trained run, what it knows of its data.

Below :mod:`retarget.train` (which writes runs), :mod:`retarget.views` (which shows
them) and :mod:`retarget.render` (which reads them); imports none of them.
"""

from retarget.run.checkpoint import checkpoint_steps, is_run, latest_checkpoint
from retarget.run.info import DataInfo
from retarget.run.layout import checkpoint_dir
from retarget.run.load import LoadedRun, find_weights, load_networks, load_run, open_run, run_weights

__all__ = [
    "DataInfo",
    "LoadedRun",
    "checkpoint_dir",
    "checkpoint_steps",
    "find_weights",
    "is_run",
    "latest_checkpoint",
    "load_networks",
    "load_run",
    "open_run",
    "run_weights",
]
