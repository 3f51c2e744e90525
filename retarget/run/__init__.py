"""Runs: the checkpoint format, loading a trained run, and what it knows of its data.

Below :mod:`retarget.train` (which writes runs) and :mod:`retarget.render` (which reads
them); imports neither.
"""

from retarget.run.info import DataInfo
from retarget.run.load import LoadedRun, find_weights, load_run

__all__ = ["DataInfo", "LoadedRun", "find_weights", "load_run"]
