"""Recycle-GAN and CycleGAN objectives as dicts of weighted scalar loss terms.

Every term is written once for a direction X -> Y and applied to (A, B) and (B, A).
Each network is called once per stage on everything it has to process in that stage
(frames of a triplet share weights, so they go through as one batch): per step
G_XY runs twice (on reals, then on fakes for the cycles), P_Y once (on fake and real
frame pairs together), D_Y once on the G side and once on the D side (reals and
fakes together). Term names and formulas: docs/training.md.

Naming: ``X/<term>`` holds the terms computed from real images of domain X
(``A/adv`` is the adversarial loss of G_AB's fakes under D_B, ``A/cycle`` is
|a - G_BA(G_AB(a))|, ``A/identity`` is |a - G_BA(a)|, ``A/recurrent`` trains P_A,
``A/feature_match`` compares D_B's early (first two blocks) features of a and G_AB(a),
``A/content`` is |f(a) - f(G_AB(a))| with the user's content network f);
``D_X/<term>`` are the discriminator terms of D_X, which judges domain X images.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Optional

import torch
from torch import Tensor, nn

from retarget.config import LossConfig, ModelConfig
from retarget.nn.losses import GanLoss, gradient_penalty, l1, total_variation
from retarget.nn.multi import MultiObjective
from retarget.nn.weights import FEATURE_BLOCKS, Weights, frames_per_sample
from retarget.nn.weights import flat_frames as _flat

if TYPE_CHECKING:
    from retarget.nn.content import ContentModel

DIRECTIONS: tuple[tuple[str, str], ...] = (("A", "B"), ("B", "A"))


class Objective:
    """Loss terms of one model; holds the networks, not the optimisers.

    Args:
        model_cfg: architecture; ``model`` picks Recycle-GAN (triplets) or CycleGAN.
        loss_cfg: loss kinds and weights.
        nets: output of :func:`retarget.nn.networks.build_networks` (possibly wrapped,
            e.g. in DDP: only ``__call__`` is used). The attribute ``nets`` may be
            replaced by wrappers of the same networks once the stepper has set their
            memory format (the trainer does so for DDP).
        content: content networks by direction (``{"A": f}`` gives ``A/content`` =
            |f(a) - f(G_AB(a))|), from :func:`retarget.nn.content.load_content_models`.

    ``memory_format`` (default ``torch.contiguous_format``) is applied to every network
    input; the stepper sets ``torch.channels_last`` on CUDA.
    """

    #: keys of the fakes :meth:`generator_terms` returns, one image pool each
    pool_keys: tuple[str, ...] = ("A", "B")

    def __init__(
        self,
        model_cfg: ModelConfig,
        loss_cfg: LossConfig,
        nets: dict[str, nn.Module],
        content: Optional[dict[str, "ContentModel"]] = None,
    ) -> None:
        self.model_cfg = model_cfg
        self.content = dict(content or {}) if loss_cfg.content > 0 else {}
        self.loss_cfg = loss_cfg
        self.nets = nets
        self.w = Weights.resolve(model_cfg.model, loss_cfg)
        self.gan = GanLoss(loss_cfg.gan_loss)
        self.recycle_model = model_cfg.model == "recycle"
        self.frames = frames_per_sample(model_cfg)
        self.p = self.frames - 1  # the predictor's input frames (recycle), else 0
        self.memory_format = torch.contiguous_format
        needed = ["G_AB", "G_BA", "D_A", "D_B"] + (["P_A", "P_B"] if self.recycle_model else [])
        missing = [k for k in needed if k not in nets]
        if missing:
            raise ValueError(f"networks missing for {model_cfg.model}: {', '.join(missing)}")

    @property
    def needs_motion(self) -> bool:
        """Whether batches must carry the source motion (``"A.flow"``...: the warp term is on)."""
        return self.w.warp > 0

    # -- helpers -----------------------------------------------------------------

    def _run(self, name: str, x: Tensor, **kw: object) -> Tensor:
        return self.nets[name](x.contiguous(memory_format=self.memory_format), **kw)

    def _check(self, batch: dict[str, Tensor]) -> None:
        for d in ("A", "B"):
            x = batch[d]
            if x.dim() != 5 or x.shape[1] != self.frames or x.shape[2] != 3:
                raise ValueError(f"batch[{d!r}] must be [B, {self.frames}, 3, H, W], got {list(x.shape)}")

    @property
    def _translated_frames(self) -> int:
        # Only x_t, x_t+1 are translated (the adversarial and recycle paths need them);
        # the cycle, identity, similarity and tv terms use these frames too. x_t+2 is
        # the x_t of another triplet, so over the data every frame gets its cycle term,
        # and a step needs 5 instead of 7 generator passes per direction.
        return self.p if self.recycle_model else 1

    # -- generator side ------------------------------------------------------------

    # Longer than 60 lines on purpose: every generator loss term in one place, in the order of the paper.
    def generator_terms(self, batch: dict[str, Tensor]) -> tuple[dict[str, Tensor], dict[str, Tensor]]:
        """Weighted loss terms of the generators and predictors, and the fakes for D.

        Args:
            batch: ``{"A": [B, T, 3, H, W], "B": [B, T, 3, H, W]}`` in [-1, 1];
                T = p_frames + 1 (3) for recycle, 1 for cyclegan.

        Returns:
            terms: ``{name: scalar tensor}``, already weighted; their sum is the G loss.
            fakes: ``{"A": [N, 3, H, W], "B": [N, 3, H, W]}`` detached fake images of
                each domain for its discriminator (N = 3B for recycle: G(x_t), G(x_t+1),
                P(G(x_t), G(x_t+1)); N = B for cyclegan).
        """
        self._check(batch)
        w, p = self.w, self.p
        Tg = self._translated_frames
        terms: dict[str, Tensor] = {}
        fakes: dict[str, Tensor] = {}
        n = batch["A"].shape[0]

        # stage 1: G_XY on every frame that needs a translation, one call per generator
        fy: dict[str, Tensor] = {}
        for X, Y in DIRECTIONS:
            x = batch[X]
            out = self._run(f"G_{X}{Y}", _flat(x[:, :Tg]))
            fy[X] = out.view(n, Tg, *out.shape[1:])

        # stage 2: P_Y on fake pairs (for recycle/adv) and real pairs of Y (recurrent), one call
        pred: dict[str, Tensor] = {}
        if self.recycle_model:
            for X, Y in DIRECTIONS:
                y = batch[Y]
                inp = [fy[X][:, :p].flatten(1, 2)]
                if w.recurrent > 0:
                    inp.append(y[:, :p].flatten(1, 2))
                out = self._run(f"P_{Y}", torch.cat(inp, 0))
                pred[X] = out[:n]
                if w.recurrent > 0:
                    terms[f"{Y}/recurrent"] = w.recurrent * l1(out[n:], y[:, p])

        for X, Y in DIRECTIONS:
            x = batch[X]
            # stage 3: adversarial on G(x_t), G(x_t+1) and P_Y(G(x_t), G(x_t+1)) in one D_Y call
            parts = [_flat(fy[X][:, : max(p, 1)])] + ([pred[X]] if self.recycle_model else [])
            kinds = max(p, 1) + (1 if self.recycle_model else 0)
            fake = torch.cat(parts, 0) if len(parts) > 1 else parts[0]
            fakes[Y] = fake.detach()
            if w.feature_match > 0:
                terms.update(self._adv_and_features(X, Y, _flat(x[:, :Tg]), fake, kinds))
            elif w.adv > 0:
                # sum over the image kinds (not a mean), as the release adds one loss per kind
                terms[f"{X}/adv"] = w.adv * kinds * self.gan.generator(self._run(f"D_{Y}", fake))
            if X in self.content:
                terms[f"{X}/content"] = w.content * self.content[X].loss(_flat(x[:, :Tg]), _flat(fy[X]))

            # stage 4: G_YX on fakes (cycle), the prediction (recycle) and x (identity)
            back = []
            if w.cycle > 0:
                back.append(_flat(fy[X]))
            if w.recycle > 0:
                back.append(pred[X])
            if w.identity > 0:
                back.append(_flat(x[:, :Tg]))
            if back:
                out = self._run(f"G_{Y}{X}", torch.cat(back, 0) if len(back) > 1 else back[0])
                i = 0
                if w.cycle > 0:
                    k = n * Tg
                    terms[f"{X}/cycle"] = w.cycle * l1(out[i : i + k], _flat(x[:, :Tg]))
                    i += k
                if w.recycle > 0:
                    terms[f"{X}/recycle"] = w.recycle * l1(out[i : i + n], x[:, p])
                    i += n
                if w.identity > 0:
                    terms[f"{X}/identity"] = w.identity * l1(out[i:], _flat(x[:, :Tg]))
            if w.similarity > 0:
                terms[f"{X}/similarity"] = w.similarity * l1(fy[X], x[:, :Tg])
            if w.tv > 0:
                terms[f"{X}/tv"] = w.tv * total_variation(_flat(fy[X]))
            if w.warp > 0:
                terms[f"{X}/warp"] = w.warp * self._warp_term(batch, X, fy[X])
        return terms, fakes

    def _adv_and_features(self, X: str, Y: str, real: Tensor, fake: Tensor, kinds: int) -> dict[str, Tensor]:
        """``X/adv`` and ``X/feature_match`` from one D_Y call on the fakes.

        ``real``: the ``k`` translated frames ``[k, 3, H, W]``; the first ``k`` rows of
        ``fake`` are G_XY of them. Their block features are compared with D_Y's on the
        real frames, from a second call that stops after block :data:`FEATURE_BLOCKS`
        under no_grad. Both calls go through D_Y's ``forward`` (DDP sees them).
        """
        w, k = self.w, real.shape[0]
        out: dict[str, Tensor] = {}
        if w.adv > 0:
            scores, feats = self._run(f"D_{Y}", fake, features=FEATURE_BLOCKS)
            out[f"{X}/adv"] = w.adv * kinds * self.gan.generator(scores)
        else:
            feats = self._run(f"D_{Y}", fake[:k], features=FEATURE_BLOCKS, scores=False)
        with torch.no_grad():
            target = self._run(f"D_{Y}", real, features=FEATURE_BLOCKS, scores=False)
        fm = torch.stack([l1(f[:k], t) for f, t in zip(feats, target)]).mean()
        out[f"{X}/feature_match"] = w.feature_match * fm
        return out

    def _warp_term(self, batch: dict[str, Tensor], X: str, fy: Tensor) -> Tensor:
        """Warp consistency of the translations ``fy`` [B, Tg, 3, H, W] along the motion of
        ``batch[X]``'s frames, read from ``batch["X.flow"]`` / ``batch["X.valid"]`` (the step
        computes no flow: the trainer's data brings it, :func:`retarget.nn.warp_loss.add_motion`
        adds it to other batches)."""
        from retarget.nn.warp_loss import warp_consistency

        if f"{X}.flow" not in batch:
            raise ValueError(
                f"the warp term needs the source motion in batch[{X + '.flow'!r}]: train through "
                "retarget.train, or add it with retarget.nn.warp_loss.add_motion(batch) before the step"
            )
        flow, valid = batch[f"{X}.flow"], batch[f"{X}.valid"]
        pairs = [warp_consistency(fy[:, t], fy[:, t + 1], flow[:, t], valid[:, t]) for t in range(fy.shape[1] - 1)]
        return torch.stack(pairs).mean()

    # -- discriminator side ----------------------------------------------------------

    def discriminator_terms(self, batch: dict[str, Tensor], fakes: dict[str, Tensor]) -> dict[str, Tensor]:
        """Weighted loss terms of D_A and D_B.

        Args:
            batch: as for :meth:`generator_terms`; every real frame is shown to D.
            fakes: ``{"A": [N, 3, H, W], "B": ...}`` fake images (from
                :meth:`generator_terms`, possibly through an image pool), in [-1, 1].

        Returns:
            ``{"D_X/real", "D_X/fake"[, "D_X/gp"]}`` for X in A, B; the sum is the D loss.
        """
        terms: dict[str, Tensor] = {}
        for X in ("A", "B"):
            real = _flat(batch[X])
            fake = fakes[X].detach()
            scores = self._run(f"D_{X}", torch.cat([real, fake], 0))
            terms[f"D_{X}/real"] = 0.5 * self.gan.real(scores[: real.shape[0]])
            terms[f"D_{X}/fake"] = 0.5 * self.gan.fake(scores[real.shape[0] :])
            if self.w.gp > 0:
                m = min(real.shape[0], fake.shape[0])
                net = self.nets[f"D_{X}"]
                terms[f"D_{X}/gp"] = self.w.gp * gradient_penalty(
                    lambda z: net(z.contiguous(memory_format=self.memory_format)), real[:m], fake[:m]
                )
        return terms

    # -- previews ------------------------------------------------------------------

    @torch.no_grad()
    def visuals(self, batch: dict[str, Tensor]) -> dict[str, Tensor]:
        """Images for a preview grid, all ``[B, 3, H, W]`` in [-1, 1], for X in A, B:

        ``X/real_t`` (t = 0..T-1), ``X/fake_t`` (G_XY of each frame), and for recycle
        ``X/pred`` (P_Y(G(x_t), G(x_t+1))), ``X/recycled`` (G_YX of it) and ``X/next``
        (P_X(x_t, x_t+1)); ``X/rec`` is G_YX(G_XY(x_0)).
        """
        self._check(batch)
        out: dict[str, Tensor] = {}
        n = batch["A"].shape[0]
        for X, Y in DIRECTIONS:
            x = batch[X]
            fy = self._run(f"G_{X}{Y}", _flat(x)).view(*x.shape)
            for t in range(x.shape[1]):
                out[f"{X}/real_{t}"] = x[:, t]
                out[f"{X}/fake_{t}"] = fy[:, t]
            out[f"{X}/rec"] = self._run(f"G_{Y}{X}", fy[:, 0])
            if self.recycle_model:
                p = self.p
                pred = self._run(f"P_{Y}", fy[:, :p].flatten(1, 2))
                out[f"{X}/pred"] = pred
                out[f"{X}/recycled"] = self._run(f"G_{Y}{X}", pred)
                out[f"{X}/next"] = self._run(f"P_{X}", x[:, :p].flatten(1, 2))
        assert all(v.shape[0] == n for v in out.values())
        return out


def needs_motion(model_cfg: ModelConfig, loss_cfg: LossConfig) -> bool:
    """Whether training batches must carry the source motion (the warp term is on)."""
    return Weights.resolve(model_cfg.model, loss_cfg).warp > 0


def make_objective(
    model_cfg: ModelConfig,
    loss_cfg: LossConfig,
    nets: dict[str, nn.Module],
    content: Optional[dict[str, "ContentModel"]] = None,
) -> Objective | MultiObjective:
    """The :class:`Objective` of ``model_cfg.model`` with ``loss_cfg`` over ``nets``
    (and the content networks ``content`` by direction, if any); with
    ``model_cfg.domains >= 2`` the :class:`retarget.nn.multi.MultiObjective`."""
    if model_cfg.domains:
        return MultiObjective(model_cfg, loss_cfg, nets, content)
    return Objective(model_cfg, loss_cfg, nets, content)
