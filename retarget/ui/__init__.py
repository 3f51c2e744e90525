"""``retarget ui``: the whole workflow in a local app page (gradio), over the same library functions.

Optional: ``pip install -e '.[ui]'``. :func:`require_gradio` says in one line how to get it.
Modules: :mod:`~retarget.ui.paths` (everything under ``--root``), :mod:`~retarget.ui.actions`
(what the buttons do), :mod:`~retarget.ui.jobs` (trainings in their own processes),
:mod:`~retarget.ui.views` (what the pages show), :mod:`~retarget.ui.app` (the page).
"""

from __future__ import annotations

from retarget.errors import RetargetError

#: The line printed when gradio is missing.
MISSING = "the app needs the ui extra: pip install -e '.[ui]'"


def require_gradio() -> None:
    """Raise a one-line :class:`RetargetError` when gradio is not installed."""
    import importlib.util

    if importlib.util.find_spec("gradio") is None:
        raise RetargetError(MISSING)
