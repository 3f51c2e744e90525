"""Training: data cache and sampler, the loop and its hooks, previews, and the training run.

``load_run``/``LoadedRun`` live in :mod:`retarget.run`; they are exported here too, as a
library caller who trains usually loads the result next.
"""

from retarget.run import LoadedRun, load_run
from retarget.train.launch import TrainResult, train
from retarget.train.loop import Hook
from retarget.train.resume import resume_config

__all__ = ["Hook", "LoadedRun", "TrainResult", "load_run", "resume_config", "train"]
