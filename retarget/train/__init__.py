"""Training: data cache and sampler, previews, hooks and the training run.

``load_run``/``LoadedRun`` moved to :mod:`retarget.run`; they are re-exported here for
code written against the old place.
"""

from retarget.run import LoadedRun, load_run
from retarget.train.resume import resume_config
from retarget.train.trainer import TrainResult, train

__all__ = ["LoadedRun", "TrainResult", "load_run", "resume_config", "train"]
