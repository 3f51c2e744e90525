"""Networks, losses, objectives and the optimisation step of Recycle-GAN / CycleGAN."""

from retarget.nn.conditional import (
    ConditionalGenerator,
    ConditionalPredictor,
    DomainDiscriminator,
    build_conditional_networks,
)
from retarget.nn.domains import domain_pairs
from retarget.nn.multi import MultiObjective
from retarget.nn.losses import GanLoss, gradient_penalty, l1, total_variation
from retarget.nn.networks import (
    PatchDiscriminator,
    ResnetGenerator,
    UnetPredictor,
    build_networks,
    check_size,
    count_parameters,
    init_weights,
)
from retarget.nn.objectives import Objective, Weights, frames_per_sample, make_objective
from retarget.nn.step import NonFiniteLoss, Stepper, d_params, g_params, make_optimizers

__all__ = [
    "GanLoss",
    "NonFiniteLoss",
    "Objective",
    "PatchDiscriminator",
    "ResnetGenerator",
    "Stepper",
    "UnetPredictor",
    "Weights",
    "build_networks",
    "check_size",
    "count_parameters",
    "d_params",
    "frames_per_sample",
    "g_params",
    "gradient_penalty",
    "init_weights",
    "l1",
    "make_objective",
    "make_optimizers",
    "total_variation",
    # the multi-domain model (docs/training.md "Multi-domain model")
    "ConditionalGenerator",
    "ConditionalPredictor",
    "DomainDiscriminator",
    "MultiObjective",
    "build_conditional_networks",
    "domain_pairs",
]
