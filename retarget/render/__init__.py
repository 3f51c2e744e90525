"""Translate whole videos with a trained run: :func:`render` (``retarget render``)."""

from retarget.render.render import RenderSummary, Translator, render, translate_video

__all__ = ["RenderSummary", "Translator", "render", "translate_video"]
