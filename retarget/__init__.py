"""retarget: unsupervised video retargeting (Recycle-GAN and CycleGAN).

The library is the product; ``retarget.cli`` is a thin layer over the functions
re-exported here.
"""

__version__ = "0.1.0"
