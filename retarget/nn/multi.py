"""The multi-domain objective: StarGAN's conditional terms with Recycle-GAN's temporal ones.

One conditional generator ``G(x, c)``, one discriminator ``D`` with a real/fake head
and a domain classifier, and (recycle) one predictor ``P(frames, c)``, from
:func:`retarget.nn.conditional.build_conditional_networks`. A batch holds samples of
different domains, each with its own source and target:

    {"x": [B, T, 3, H, W] in [-1, 1],      # T consecutive frames of each sample's source domain
     "src": [B] long, "dst": [B] long,      # source and target domain of each sample (dst != src)
     "x.flow": [B, T-1, H, W, 2], "x.valid": [B, T-1, 1, H, W]}   # source motion, warp term only

Terms (``f_t = G(x_t, dst)``, ``p = P(f_t, f_t+1, dst)``; formulas in docs/training.md
"Multi-domain model"); every name starts with ``x/`` (computed from the real frames
``x``, whatever their domain) or ``D/`` (the discriminator's), so the loop names none:
``x/adv``, ``x/cls`` (D's classifier should name ``dst`` on the fakes), ``x/cycle``
(``G(f_t, src) ~ x_t``), ``x/identity`` (``G(x_t, src) ~ x_t``), ``x/recurrent``
(``P(x_t, x_t+1, src) ~ x_t+2``), ``x/recycle`` (``G(p, src) ~ x_t+2``), ``x/warp``,
``x/similarity``, ``x/tv``, ``x/feature_match``, ``x/content``; ``D/real``, ``D/fake``,
``D/cls`` (D's classifier on the real frames, toward ``src``), ``D/gp``.

Options of :class:`~retarget.config.LossConfig` that do not apply, or apply differently:
``content_model_a`` / ``content_model_b`` name a direction of a pair and are refused
(``ValueError``); ``content_model`` serves every direction. ``cls`` applies here only.
Every other weight means what it means for a pair (``identity`` None = 0.5 x cycle;
recurrent, recycle and warp are 0 for ``model="cyclegan"``).

The fakes for D are the images alone (``{"D": [N, 3, H, W]}``, one image pool over all
domains): D's classifier learns from real frames only (StarGAN), so the real/fake head
is the only one that sees fakes and no label has to travel with them through the pool.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Optional

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from retarget.config import LossConfig, ModelConfig
from retarget.nn.losses import GanLoss, gradient_penalty, l1, total_variation
from retarget.nn.weights import FEATURE_BLOCKS, Weights, frames_per_sample
from retarget.nn.weights import flat_frames as _flat

if TYPE_CHECKING:
    from retarget.nn.content import ContentModel


class MultiObjective:
    """Loss terms of a multi-domain model; the interface of :class:`~retarget.nn.objectives.Objective`.

    Args:
        model_cfg: architecture with ``domains >= 2``; ``model`` picks triplets (recycle)
            or single frames (cyclegan, i.e. StarGAN with this code base's networks).
        loss_cfg: weights; ``cls`` weighs both classification terms.
        nets: ``{"G", "D"[, "P"]}`` (possibly wrapped, e.g. in DDP: only ``__call__`` is used).
        content: content networks by direction as :func:`retarget.nn.content.load_content_models`
            returns them; with only ``content_model`` set every value is the same network,
            which is applied to every translation.
    """

    #: keys of the fakes :meth:`generator_terms` returns, one image pool each
    pool_keys: tuple[str, ...] = ("D",)

    def __init__(
        self,
        model_cfg: ModelConfig,
        loss_cfg: LossConfig,
        nets: dict[str, nn.Module],
        content: Optional[dict[str, "ContentModel"]] = None,
    ) -> None:
        if model_cfg.domains < 2:
            raise ValueError(f"the multi-domain objective needs domains >= 2, got {model_cfg.domains}")
        if loss_cfg.content_model_a or loss_cfg.content_model_b:
            raise ValueError(
                "content_model_a/content_model_b name a direction of a two-domain model; "
                "a multi-domain model takes content_model, applied to every direction"
            )
        self.model_cfg, self.loss_cfg, self.nets = model_cfg, loss_cfg, nets
        self.domains = model_cfg.domains
        self.w = Weights.resolve(model_cfg.model, loss_cfg)
        self.cls = loss_cfg.cls
        self.content = next(iter(content.values())) if content and loss_cfg.content > 0 else None
        self.gan = GanLoss(loss_cfg.gan_loss)
        self.recycle_model = model_cfg.model == "recycle"
        self.frames = frames_per_sample(model_cfg)
        self.p = self.frames - 1  # the predictor's input frames (recycle), else 0
        self.memory_format = torch.contiguous_format
        missing = [k for k in ("G", "D") + (("P",) if self.recycle_model else ()) if k not in nets]
        if missing:
            raise ValueError(f"networks missing for a multi-domain {model_cfg.model}: {', '.join(missing)}")

    @property
    def needs_motion(self) -> bool:
        """Whether batches must carry ``"x.flow"`` / ``"x.valid"`` (the warp term is on)."""
        return self.w.warp > 0

    # -- helpers -----------------------------------------------------------------

    def _run(self, name: str, x: Tensor, *args: Tensor, **kw: object):  # a tensor, or D's tuple
        return self.nets[name](x.contiguous(memory_format=self.memory_format), *args, **kw)

    def _check(self, batch: dict[str, Tensor]) -> None:
        x = batch["x"]
        if x.dim() != 5 or x.shape[1] != self.frames or x.shape[2] != 3:
            raise ValueError(f"batch['x'] must be [B, {self.frames}, 3, H, W], got {list(x.shape)}")
        for key in ("src", "dst"):
            c = batch[key]
            if c.shape != (x.shape[0],) or c.dtype != torch.long:
                raise ValueError(f"batch[{key!r}] must be a [{x.shape[0]}] long tensor, got {list(c.shape)} {c.dtype}")

    @property
    def _translated_frames(self) -> int:
        # x_t, x_t+1 for recycle (x_t+2 is the x_t of another triplet), the frame for cyclegan
        return self.p if self.recycle_model else 1

    # -- generator side ------------------------------------------------------------

    def generator_terms(self, batch: dict[str, Tensor]) -> tuple[dict[str, Tensor], dict[str, Tensor]]:
        """Weighted loss terms of G and P, and the fakes for D.

        Per step: G runs twice (toward ``dst``, then back with ``src``), P once (fake
        pairs with ``dst`` and real pairs with ``src``), D once on the fakes.

        Returns:
            terms: ``{name: scalar tensor}``, already weighted; their sum is the G loss.
            fakes: ``{"D": [N, 3, H, W]}`` detached fakes (recycle: N = 3B, the 2B
                translations f_t, f_t+1 sample by sample, then the B predictions p;
                cyclegan: the B translations).
        """
        self._check(batch)
        w, Tg = self.w, self._translated_frames
        x, src, dst = batch["x"], batch["src"], batch["dst"]
        n = x.shape[0]
        xs = _flat(x[:, :Tg])
        dst_t = dst.repeat_interleave(Tg)
        terms: dict[str, Tensor] = {}

        out = self._run("G", xs, dst_t)  # stage 1: every frame toward its target
        fy = out.view(n, Tg, *out.shape[1:])
        pred = self._predict(x, fy, src, dst, terms) if self.recycle_model else None

        fake = _flat(fy) if pred is None else torch.cat([_flat(fy), pred], 0)
        fake_dst = dst_t if pred is None else torch.cat([dst_t, dst], 0)
        terms.update(self._judge(xs, fake, fake_dst, kinds=Tg + (pred is not None)))
        if self.content is not None:
            terms["x/content"] = w.content * self.content.loss(xs, _flat(fy))
        terms.update(self._back(x, fy, pred, src))
        if w.similarity > 0:
            terms["x/similarity"] = w.similarity * l1(fy, x[:, :Tg])
        if w.tv > 0:
            terms["x/tv"] = w.tv * total_variation(_flat(fy))
        if w.warp > 0:
            terms["x/warp"] = w.warp * self._warp_term(batch, fy)
        return terms, {"D": fake.detach()}

    def _predict(self, x: Tensor, fy: Tensor, src: Tensor, dst: Tensor, terms: dict[str, Tensor]) -> Tensor:
        """Stage 2, one P call: ``P(f_t, f_t+1, dst)`` (returned) and, for ``x/recurrent``
        (added to ``terms``), ``P(x_t, x_t+1, src)`` against ``x_t+2``."""
        w, p, n = self.w, self.p, x.shape[0]
        inp, labels = [fy[:, :p].flatten(1, 2)], [dst]
        if w.recurrent > 0:
            inp.append(x[:, :p].flatten(1, 2))
            labels.append(src)
        out = self._run("P", torch.cat(inp, 0), torch.cat(labels, 0))
        if w.recurrent > 0:
            terms["x/recurrent"] = w.recurrent * l1(out[n:], x[:, p])
        return out[:n]

    def _judge(self, real: Tensor, fake: Tensor, fake_dst: Tensor, kinds: int) -> dict[str, Tensor]:
        """Stage 3, one D call on the fakes: ``x/adv``, ``x/cls`` and ``x/feature_match``.

        ``real``: the ``k`` translated real frames; the first ``k`` fakes are their
        translations. Adversarial and classification terms sum one mean per image kind
        (``kinds``: the translations of x_t, x_t+1 and the prediction), as the pair's
        ``X/adv`` does.
        """
        w, out = self.w, {}
        if not (w.adv > 0 or self.cls > 0 or w.feature_match > 0):
            return out
        if w.feature_match > 0:
            scores, logits, feats = self._run("D", fake, features=FEATURE_BLOCKS)
        else:
            scores, logits = self._run("D", fake)
        if w.adv > 0:
            out["x/adv"] = w.adv * kinds * self.gan.generator(scores)
        if self.cls > 0:
            out["x/cls"] = self.cls * kinds * F.cross_entropy(logits.float(), fake_dst)
        if w.feature_match > 0:
            k = real.shape[0]
            with torch.no_grad():
                target = self._run("D", real, features=FEATURE_BLOCKS, scores=False)
            fm = torch.stack([l1(f[:k], t) for f, t in zip(feats, target)]).mean()
            out["x/feature_match"] = w.feature_match * fm
        return out

    def _back(self, x: Tensor, fy: Tensor, pred: Optional[Tensor], src: Tensor) -> dict[str, Tensor]:
        """Stage 4, one G call with the source labels: ``x/cycle`` on the translations,
        ``x/recycle`` on the prediction, ``x/identity`` on the real frames."""
        w, p, Tg = self.w, self.p, self._translated_frames
        xs, src_t = _flat(x[:, :Tg]), src.repeat_interleave(Tg)
        parts: list[tuple[str, Tensor, Tensor, Tensor, float]] = []  # name, input, label, target, weight
        if w.cycle > 0:
            parts.append(("x/cycle", _flat(fy), src_t, xs, w.cycle))
        if w.recycle > 0 and pred is not None:
            parts.append(("x/recycle", pred, src, x[:, p], w.recycle))
        if w.identity > 0:
            parts.append(("x/identity", xs, src_t, xs, w.identity))
        if not parts:
            return {}
        out = self._run("G", torch.cat([q[1] for q in parts], 0), torch.cat([q[2] for q in parts], 0))
        terms, i = {}, 0
        for name, inp, _, target, weight in parts:
            terms[name] = weight * l1(out[i : i + inp.shape[0]], target)
            i += inp.shape[0]
        return terms

    def _warp_term(self, batch: dict[str, Tensor], fy: Tensor) -> Tensor:
        """Warp consistency of ``fy`` [B, Tg, 3, H, W] along ``batch["x.flow"]`` / ``["x.valid"]``."""
        from retarget.nn.warp_loss import warp_consistency

        if "x.flow" not in batch:
            raise ValueError(
                "the warp term needs the source motion in batch['x.flow']: train through "
                "retarget.train, or add it with retarget.nn.warp_loss.add_motion(batch) before the step"
            )
        flow, valid = batch["x.flow"], batch["x.valid"]
        pairs = [warp_consistency(fy[:, t], fy[:, t + 1], flow[:, t], valid[:, t]) for t in range(fy.shape[1] - 1)]
        return torch.stack(pairs).mean()

    # -- discriminator side ----------------------------------------------------------

    def discriminator_terms(self, batch: dict[str, Tensor], fakes: dict[str, Tensor]) -> dict[str, Tensor]:
        """Weighted terms of D: ``D/real``, ``D/fake``, ``D/cls`` (reals toward ``src``), ``D/gp``.

        Args:
            batch: as for :meth:`generator_terms`; every real frame is shown to D.
            fakes: ``{"D": [N, 3, H, W]}`` (from :meth:`generator_terms`, possibly through
                an image pool), in [-1, 1]; only the real/fake head is trained on them.
        """
        x, src = batch["x"], batch["src"]
        real = _flat(x)
        fake = fakes["D"].detach()
        scores, logits = self._run("D", torch.cat([real, fake], 0))
        k = real.shape[0]
        terms = {"D/real": 0.5 * self.gan.real(scores[:k]), "D/fake": 0.5 * self.gan.fake(scores[k:])}
        if self.cls > 0:
            terms["D/cls"] = self.cls * F.cross_entropy(logits[:k].float(), src.repeat_interleave(x.shape[1]))
        else:
            # no D/cls term, but the classifier stays in the backward with a zero gradient:
            # DDP (without find_unused_parameters) needs every parameter of D to get one
            terms["D/real"] = terms["D/real"] + 0.0 * logits.sum()
        if self.w.gp > 0:
            m = min(k, fake.shape[0])
            net = self.nets["D"]
            terms["D/gp"] = self.w.gp * gradient_penalty(
                lambda z: net(z.contiguous(memory_format=self.memory_format))[0], real[:m], fake[:m]
            )
        return terms

    # -- previews ------------------------------------------------------------------

    @torch.no_grad()
    def visuals(self, batch: dict[str, Tensor]) -> dict[str, Tensor]:
        """Images for a preview grid, all ``[B, 3, H, W]`` in [-1, 1]:

        ``x/real_t`` (t = 0..T-1), ``x/fake_t`` (``G(x_t, dst)``), ``x/rec``
        (``G(G(x_0, dst), src)``), for recycle ``x/pred`` (``P(f_0, f_1, dst)``),
        ``x/recycled`` (``G(pred, src)``) and ``x/next`` (``P(x_0, x_1, src)``), and
        ``x/to_k`` (``G(x_0, k)``) for every domain k.
        """
        self._check(batch)
        x, src, dst = batch["x"], batch["src"], batch["dst"]
        n, T = x.shape[:2]
        fy = self._run("G", _flat(x), dst.repeat_interleave(T)).view(*x.shape)
        out: dict[str, Tensor] = {}
        for t in range(T):
            out[f"x/real_{t}"] = x[:, t]
            out[f"x/fake_{t}"] = fy[:, t]
        out["x/rec"] = self._run("G", fy[:, 0], src)
        if self.recycle_model:
            p = self.p
            out["x/pred"] = self._run("P", fy[:, :p].flatten(1, 2), dst)
            out["x/recycled"] = self._run("G", out["x/pred"], src)
            out["x/next"] = self._run("P", x[:, :p].flatten(1, 2), src)
        for k in range(self.domains):
            out[f"x/to_{k}"] = self._run("G", x[:, 0], torch.full_like(src, k))
        assert all(v.shape[0] == n for v in out.values())
        return out
