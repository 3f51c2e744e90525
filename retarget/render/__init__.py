"""Translate whole videos with a trained run: :func:`render` (``retarget render``)."""

from retarget.render.render import RenderSummary, render, translate_video
from retarget.render.translate import Translator

__all__ = ["RenderSummary", "Translator", "render", "translate_video"]
