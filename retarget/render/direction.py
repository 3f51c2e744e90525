"""Which way a render translates: ``--direction`` for a pair, ``--to`` / ``--from`` by domain name.

A pair has two generators (``G_AB``, ``G_BA``); ``--direction`` picks one, and so do
``--to`` / ``--from`` with a domain's name (``A``, ``B``, or the name of its dataset
folder). A multi-domain run has one generator ``G(x, c)``: ``--to NAME`` gives its
target label. The *source* domain only decides how the input is cut (alignment, whole
frames or squares, crop, scale, scene-cut threshold: its training data's
:class:`~retarget.run.info.DataInfo`), since the generator is not told where its input
comes from; ``--from`` names it, and by default it is the first domain other than the
target (the usual layout: the source footage first, then the looks it goes to).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from retarget.config import RenderConfig
from retarget.errors import RetargetError
from retarget.run.load import LoadedRun


@dataclass(frozen=True)
class Direction:
    """The generator a render applies and the domain whose data decide the cut.

    Attributes:
        network: ``"G_AB"``, ``"G_BA"`` (a pair) or ``"G"`` (a multi-domain run).
        target: the label ``G`` translates to (multi-domain), None for a pair.
        source: key of the source domain in ``LoadedRun.data`` (``"A"``, ``"B"`` or a name).
        text: how the summary says it: ``"a2b"`` / ``"b2a"`` for a pair, ``"FROM->TO"`` otherwise.
    """

    network: str
    target: Optional[int]
    source: str
    text: str


def _pair_names(run: LoadedRun) -> dict[str, str]:
    """Every name a pair's domain answers to -> ``"A"`` or ``"B"``: the sides, and their datasets' names
    (a dataset name both sides share answers to neither)."""
    names = {"A": "A", "B": "B"}
    a, b = run.data_of("A").name, run.data_of("B").name
    for side, name in (("A", a), ("B", b)):
        if name and a != b and name not in names:
            names[name] = side
    return names


def _unknown(flag: str, name: str, choices: list[str]) -> RetargetError:
    return RetargetError(f"{flag} {name}: no such domain in this run; its domains are {', '.join(choices)}")


def _pair(run: LoadedRun, cfg: RenderConfig) -> Direction:
    names = _pair_names(run)
    choices = [f"A ({run.data_of('A').name})" if run.data_of("A").name else "A"]
    choices.append(f"B ({run.data_of('B').name})" if run.data_of("B").name else "B")

    def side(flag: str, name: str) -> str:
        if name not in names:
            raise _unknown(flag, name, choices)
        return names[name]

    other = {"A": "B", "B": "A"}
    if cfg.to_domain is not None:
        source = other[side("--to", cfg.to_domain)]
        if cfg.from_domain is not None and side("--from", cfg.from_domain) != source:
            raise RetargetError(f"--from {cfg.from_domain} --to {cfg.to_domain}: the same domain; pick two")
    elif cfg.from_domain is not None:
        source = side("--from", cfg.from_domain)
    else:
        source = "A" if cfg.direction == "a2b" else "B"
    network, text = ("G_AB", "a2b") if source == "A" else ("G_BA", "b2a")
    return Direction(network, None, source, text)


def _multi(run: LoadedRun, cfg: RenderConfig) -> Direction:
    domains = list(run.domains)

    def index(flag: str, name: str) -> int:
        if name not in domains:
            raise _unknown(flag, name, domains)
        return domains.index(name)

    source = index("--from", cfg.from_domain) if cfg.from_domain is not None else None
    if cfg.to_domain is not None:
        target = index("--to", cfg.to_domain)
    elif len(domains) == 2:  # --direction, or the other one of --from
        target = (1 - source) if source is not None else (1 if cfg.direction == "a2b" else 0)
    else:
        raise RetargetError(
            f"this run translates between {len(domains)} domains ({', '.join(domains)}): pick the target with --to NAME"
        )
    if source is None:
        source = next(k for k in range(len(domains)) if k != target)
    if source == target:
        raise RetargetError(f"--from {domains[source]} --to {domains[target]}: the same domain; pick two")
    return Direction("G", target, domains[source], f"{domains[source]}->{domains[target]}")


def pick_direction(run: LoadedRun, cfg: RenderConfig) -> Direction:
    """The :class:`Direction` of ``cfg`` (``direction``, ``to_domain``, ``from_domain``) on ``run``.

    ``run`` needs no networks (:func:`retarget.run.load.open_run`). ``to_domain`` wins over
    ``direction``.

    Raises:
        RetargetError: an unknown name (the message lists the run's domains), the same
            domain as source and target, or no ``to_domain`` for a run of three or more domains.
    """
    return _multi(run, cfg) if run.model_cfg.domains else _pair(run, cfg)
