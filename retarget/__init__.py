"""retarget: unsupervised video retargeting (Recycle-GAN and CycleGAN).

The library is the product; ``retarget.cli`` is a thin layer over one library function
per command: :func:`retarget.dataset.extract.extract`, :func:`retarget.train.train`,
:func:`retarget.render.render` and :func:`retarget.demo.demo.demo`, each taking a config
from :mod:`retarget.config`. Trained runs load with :func:`retarget.run.load_run`.
Subpackages are imported on use (``import retarget`` stays light).
"""

import os

# OpenMP threads that spin while waiting make torch many times slower whenever another
# process shares the cores (measured: 25.8 s -> 5.6 s per official step on a loaded
# 2-core machine). Set here, before torch is first imported through retarget, so
# library users get it as well as the CLI; an explicit setting wins.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

__version__ = "0.1.0"
