"""Training: data cache and sampler, checkpoints, previews, and the training run."""

from retarget.train.checkpoint import LoadedRun, load_run
from retarget.train.trainer import TrainResult, train

__all__ = ["LoadedRun", "TrainResult", "load_run", "train"]
