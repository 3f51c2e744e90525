"""What both objectives share: resolved loss weights, frames per sample, the feature blocks.

:mod:`retarget.nn.objectives` (a pair of domains) and :mod:`retarget.nn.multi` (n
domains in one conditional model) read their weights and sample layout from here, so
a weight means the same in both.
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import Tensor

from retarget.config import IDENTITY_PER_CYCLE, LossConfig, ModelConfig

#: PatchGAN blocks whose outputs the feature-matching term compares (docs/training.md):
#: the first two (receptive fields 4 and 10 px) hold edges and local layout, which
#: the translation should keep; deeper blocks encode what tells the domains apart.
FEATURE_BLOCKS = 2


@dataclass(frozen=True)
class Weights:
    """Resolved loss weights; 0 means the term is neither computed nor reported."""

    adv: float
    cycle: float
    recurrent: float
    recycle: float
    identity: float
    similarity: float
    gp: float
    tv: float
    feature_match: float = 0.0
    content: float = 0.0
    warp: float = 0.0

    @staticmethod
    def resolve(model: str, loss: LossConfig) -> "Weights":
        """Weights of ``loss`` for ``model``: identity None -> 0.5·cycle (:data:`IDENTITY_PER_CYCLE`,
        both models; the release's script used 0 for Recycle-GAN, see docs/training.md
        "Temporal quality"; a new run on whole frames saves its own weight, see
        :func:`retarget.config.whole_frame_loss`); recurrent, recycle and warp are 0 for cyclegan."""
        identity = loss.identity
        if identity is None:
            identity = IDENTITY_PER_CYCLE * loss.cycle
        temporal = model == "recycle"
        return Weights(
            adv=loss.adv,
            cycle=loss.cycle,
            recurrent=loss.recurrent if temporal else 0.0,
            recycle=loss.recycle if temporal else 0.0,
            identity=identity,
            similarity=loss.similarity,
            gp=loss.gp,
            tv=loss.tv,
            feature_match=loss.feature_match,
            content=loss.content,
            warp=loss.warp if temporal else 0.0,
        )


def frames_per_sample(model_cfg: ModelConfig) -> int:
    """Consecutive frames one training sample holds: the predictor's ``p_frames`` and the one
    it predicts for Recycle-GAN (3 by default), 1 for CycleGAN."""
    return model_cfg.p_frames + 1 if model_cfg.model == "recycle" else 1


def flat_frames(x: Tensor) -> Tensor:
    """``[B, T, C, H, W]`` -> ``[B*T, C, H, W]`` (sample-major)."""
    return x.reshape(-1, *x.shape[2:])
