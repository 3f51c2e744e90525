"""One optimisation step: generators and predictors, then discriminators.

Design (speed and correctness; measurements in docs/training.md):

- D's parameters have ``requires_grad`` off during the G pass, so the G backward
  computes only the input gradients D must pass through, never D weight gradients that
  would be thrown away.
- D sees reals and (pooled) fakes in one call per discriminator, once per step.
- The fakes D trains on are detached outputs of the G pass, so D's forward/backward does
  not depend on G's update; both backward passes run first, then one host sync reads
  every term (checks they are finite), then both optimisers step. This is the same
  arithmetic as "step G, then D" of the release, with one sync instead of one per term.
- ``grad_hook(which, params)`` runs after each backward and before the optimiser step
  ("G" or "D"), e.g. to clip or inspect gradients. DDP needs no hook: its wrappers
  (:mod:`retarget.train.distributed`) all-reduce gradients during the backward pass.
- Mixed precision on CUDA and CPU: autocast to bf16, or to fp16 with a GradScaler
  (``amp``, resolved by :func:`retarget.device.resolve_amp`; ``auto`` = bf16 where the
  device computes it natively). Terms that need float32 leave autocast themselves (the
  warp term's sampling grid, the gradient penalty). channels_last on CUDA.
"""

from __future__ import annotations

import contextlib
from typing import Callable, Iterable, Optional

import torch
from torch import Tensor, nn

from retarget.device import AMP_DTYPES, resolve_amp
from retarget.nn.objectives import Objective
from retarget.nn.pool import ImagePool

GradHook = Callable[[str, list[nn.Parameter]], None]


class NonFiniteLoss(RuntimeError):
    """A loss term was NaN or infinite; raised before any optimiser step of that step."""

    def __init__(self, terms: list[str], values: Optional[dict[str, float]] = None) -> None:
        self.terms = terms
        self.values = values or {}
        super().__init__(f"non-finite loss in {', '.join(terms)}")


def is_discriminator(name: str) -> bool:
    """Whether network ``name`` is a discriminator: ``D_A``, ``D_B`` of a pair, ``D`` of a multi-domain model."""
    return name == "D" or name.startswith("D_")


def g_params(nets: dict[str, nn.Module]) -> list[nn.Parameter]:
    """Parameters of the generators and predictors (one optimiser in the release)."""
    return [p for k in sorted(nets) if not is_discriminator(k) for p in nets[k].parameters()]


def d_params(nets: dict[str, nn.Module]) -> list[nn.Parameter]:
    """Parameters of the discriminators."""
    return [p for k in sorted(nets) if is_discriminator(k) for p in nets[k].parameters()]


def make_optimizers(
    nets: dict[str, nn.Module], lr: float = 2e-4, betas: tuple[float, float] = (0.5, 0.999)
) -> tuple[torch.optim.Adam, torch.optim.Adam]:
    """Adam for G+P and for D_A+D_B (Adam is per-parameter, so one D optimiser equals the
    release's two). Uses the fused kernel when the parameters' device supports it (one
    pass over ~100M parameters instead of several), else foreach."""
    out = []
    for params in (g_params(nets), d_params(nets)):
        dev = params[0].device.type
        kw = {"fused": True} if dev in ("cpu", "cuda") else {"foreach": True}
        out.append(torch.optim.Adam(params, lr=lr, betas=betas, **kw))
    return out[0], out[1]


def set_requires_grad(nets: Iterable[nn.Module], flag: bool) -> None:
    """Switch gradient tracking of every parameter of ``nets``."""
    for net in nets:
        for p in net.parameters():
            p.requires_grad_(flag)


class Stepper:
    """Runs full optimisation steps of an :class:`Objective` (or a :class:`retarget.nn.multi.MultiObjective`).

    Args:
        objective: the loss terms (holds the networks).
        g_opt, d_opt: optimisers of :func:`g_params` and :func:`d_params`
            (see :func:`make_optimizers`).
        pools: one :class:`ImagePool` per key of ``objective.pool_keys`` (``"A"``, ``"B"``
            for a pair, ``"D"`` for a multi-domain model) applied to the fakes before D;
            ``None`` passes fakes straight through.
        amp: ``"auto"``, ``"bf16"``, ``"fp16"`` or ``"off"`` on CUDA and CPU
            (:func:`retarget.device.resolve_amp`); ``self.amp`` is the resolved value.
        channels_last: memory format of networks and inputs; ``None`` = on for CUDA only.
        grad_hook: ``hook(which, params)`` with which ∈ {"G", "D"}, after each backward.
        device: where the networks are; default: the device of the first parameter.
        agree: ``agree(finite_here) -> finite_everywhere``, for data-parallel runs: a
            NaN on any rank then raises :class:`NonFiniteLoss` on every rank.
    """

    def __init__(
        self,
        objective: Objective,
        g_opt: torch.optim.Optimizer,
        d_opt: torch.optim.Optimizer,
        *,
        pools: Optional[dict[str, "ImagePool"]] = None,
        amp: str = "off",
        channels_last: Optional[bool] = None,
        grad_hook: Optional[GradHook] = None,
        device: Optional[torch.device] = None,
        agree: Optional[Callable[[bool], bool]] = None,
    ) -> None:
        self.objective = objective
        self.nets = objective.nets
        self.g_opt, self.d_opt = g_opt, d_opt
        if pools is not None and set(pools) != set(objective.pool_keys):
            raise ValueError(f"pools keyed {sorted(pools)}; this objective's fakes are {list(objective.pool_keys)}")
        self.pools = pools
        self.grad_hook = grad_hook
        self.agree = agree
        self.device = device or next(iter(self.nets.values())).parameters().__next__().device
        cuda = self.device.type == "cuda"
        self.amp = resolve_amp(amp, self.device, getattr(objective.model_cfg, "ngf", None))  # "bf16", "fp16" or "off"
        self.amp_dtype = AMP_DTYPES.get(self.amp)
        # fp16's narrow range: the loss is scaled up so small gradients do not underflow
        self.scaler = torch.amp.GradScaler(self.device.type) if self.amp == "fp16" else None
        if channels_last is None:
            channels_last = cuda
        if channels_last:
            for net in self.nets.values():
                net.to(memory_format=torch.channels_last)
            objective.memory_format = torch.channels_last
        self.d_nets = [m for k, m in self.nets.items() if is_discriminator(k)]
        self.g_list = g_params(self.nets)
        self.d_list = d_params(self.nets)

    def _autocast(self) -> contextlib.AbstractContextManager:
        if self.amp_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=self.amp_dtype)

    def _backward(self, loss: Tensor) -> None:
        (self.scaler.scale(loss) if self.scaler is not None else loss).backward()

    def step(self, batch: dict[str, Tensor]) -> dict[str, float]:
        """One step on ``batch`` (``{"A", "B": [B, T, 3, H, W]}`` in [-1, 1], or the
        multi-domain batch of :mod:`retarget.nn.multi`; any device).

        Returns:
            every weighted term (see :class:`Objective`) plus ``loss_G`` and ``loss_D``
            as Python floats.

        Raises:
            NonFiniteLoss: a term is NaN/inf; no optimiser has stepped, gradients are
                left as computed.
        """
        batch = {k: v.to(self.device, non_blocking=True) for k, v in batch.items()}
        self.g_opt.zero_grad(set_to_none=True)
        self.d_opt.zero_grad(set_to_none=True)

        set_requires_grad(self.d_nets, False)
        try:
            with self._autocast():
                g_terms, fakes = self.objective.generator_terms(batch)
            loss_g = torch.stack(list(g_terms.values())).sum()
            self._backward(loss_g)
        finally:
            set_requires_grad(self.d_nets, True)
        if self.grad_hook is not None:
            self.grad_hook("G", self.g_list)

        if self.pools is not None:
            fakes = {k: self.pools[k].query(v) for k, v in fakes.items()}
        with self._autocast():
            d_terms = self.objective.discriminator_terms(batch, fakes)
        loss_d = torch.stack(list(d_terms.values())).sum()
        self._backward(loss_d)
        if self.grad_hook is not None:
            self.grad_hook("D", self.d_list)

        names = list(g_terms) + list(d_terms) + ["loss_G", "loss_D"]
        # the step's one host sync
        values = torch.stack([*g_terms.values(), *d_terms.values(), loss_g, loss_d]).detach().float().cpu().tolist()
        out = dict(zip(names, values))
        bad = [k for k, v in out.items() if not (v == v and abs(v) != float("inf"))]
        # Under DDP every rank must stop at the same step, or the healthy ones would
        # wait forever in the next gradient all-reduce.
        if self.agree is not None and not self.agree(not bad) and not bad:
            bad = ["(on another rank)"]
        if bad:
            raise NonFiniteLoss(bad, out)

        if self.scaler is not None:
            self.scaler.step(self.g_opt)
            self.scaler.step(self.d_opt)
            self.scaler.update()
        else:
            self.g_opt.step()
            self.d_opt.step()
        return out

    def state_dict(self) -> dict:
        """Pools and grad scaler state (optimisers are saved by their owner)."""
        state: dict = {}
        if self.pools is not None:
            state["pools"] = {k: p.state_dict() for k, p in self.pools.items()}
        if self.scaler is not None:
            state["scaler"] = self.scaler.state_dict()
        return state

    def load_state_dict(self, state: dict) -> None:
        """Restore :meth:`state_dict` output."""
        if self.pools is not None and "pools" in state:
            for k, p in self.pools.items():
                p.load_state_dict(state["pools"][k], device=self.device)
        if self.scaler is not None and "scaler" in state:
            self.scaler.load_state_dict(state["scaler"])
