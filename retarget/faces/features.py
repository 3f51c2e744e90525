"""What the swap compares and follows: a face's expression features, the pick's match cost,
each person's rest, and the mouth opened or closed to a given opening.

:func:`expression_features` describes a face by 7 numbers from its 68 landmarks (mouth
openings and width, eye openings, yaw and pitch proxies); :func:`match_cost` is the pick's
distance between them; a person's rest (:func:`rest_frames` over a dataset,
:class:`RunningRest` over a video as it comes) is the mean of their faces with the mouth
closed and the eyes open; :func:`set_mouth_opening` moves the lower lip and chin. The swap
itself is :mod:`retarget.faces.retrieval`.
"""

from __future__ import annotations

import numpy as np

from retarget.faces.eyes import EYES, LIDS

__all__ = [
    "FEATURES",
    "MIN_REST",
    "MISMATCH_CAP",
    "PERSONAL",
    "WEIGHTS",
    "RunningRest",
    "expression_features",
    "match_cost",
    "rest_frames",
    "set_eye_openings",
    "set_mouth_opening",
]

#: What :func:`expression_features` measures, in order.
FEATURES = ("mouth_inner", "mouth_outer", "mouth_width", "eye_left", "eye_right", "yaw", "pitch")
#: Weight of each feature in the match (the mouth first: it carries speech).
WEIGHTS = np.array([2.0, 1.0, 1.0, 0.5, 0.5, 1.0, 1.0])
#: Features compared as offsets from each person's rest (:func:`rest_frames`; their rest value is personal).
PERSONAL = np.array([False, False, True, False, False, True, True])
#: Inner mouth opening (per eye distance) under which a face counts as at rest (:func:`rest_frames`).
#: The rest instead of the mean (benchmarks/faces_self.py, 5 people): face PSNR 26.72 -> 27.41 dB,
#: landmark distance 2.98 -> 2.52 % of the eye distance. On a quick proxy (the swapped crop
#: against the truth's crop) 0.05 and 0.1 did alike; 0.15 let half-open mouths in (one
#: person's short, always-open clip then lost 3 dB).
REST_OPENING = 0.1
#: A face at rest has both eyes open at least this share of the person's mean eye opening (a
#: blink or a squint is not rest); without it one person with half-closed eyes lost 0.4 dB on the proxy.
REST_EYES = 0.8
#: Faces at rest a source must show before its rest replaces its mean (:class:`RunningRest`):
#: one frame can be a landmark glitch (one person's clip, mouth open throughout, had a single
#: "closed" frame, turned aside; warped against it, the whole clip's landmarks fell 2.3x further off).
MIN_REST = 5
#: A feature no target frame comes near costs no more than this (squared target standard
#: deviations: 2.5), so it does not decide the pick alone: the mouth still does. With the
#: look-ahead's rest pose, one pair's first frames turned further from it than any target
#: frame and the pose chose closed mouths (mouth correlation 0.72; capped: 0.89). Caps of
#: 4, 6.25 and 9 gave self-reenactment 28.37, 28.56 and 28.81 dB, the cross pairs' lowest
#: mouth correlation 0.81, 0.86 and 0.72.
MISMATCH_CAP = 6.25
#: Lower-lip landmarks (outer 55-59, inner 65-67), moved to open or close the mouth.
LOWER_LIP = np.array([55, 56, 57, 58, 59, 65, 66, 67])
#: Chin landmarks, and the share of a mouth opening each follows (the jaw drops with it).
CHIN = np.array([5, 6, 7, 8, 9, 10, 11])
CHIN_SHARE = np.array([0.3, 0.6, 0.8, 0.9, 0.8, 0.6, 0.3])


def _dist(points: np.ndarray, i: int, j: int) -> float:
    return float(np.linalg.norm(points[i] - points[j]))


def expression_features(points: np.ndarray) -> np.ndarray:
    """Expression and pose of a face from its 68 landmarks (any pixel frame without shear).

    Args:
        points: ``(68, 2)`` dlib/iBUG landmarks.

    Returns:
        ``(7,)`` float64 in the order of :data:`FEATURES`: mouth openings and width per eye
        distance, eye openings per eye width (about 0.3 open, under 0.15 shut), yaw (nose
        tip's offset from the jaw's middle per jaw width, 0 frontal) and pitch (nose tip's
        height between eyes and chin).
    """
    p = np.asarray(points, np.float64)
    left, right = p[36:42].mean(0), p[42:48].mean(0)
    eyes = max(float(np.linalg.norm(left - right)), 1e-6)
    inner = (_dist(p, 61, 67) + _dist(p, 62, 66) + _dist(p, 63, 65)) / 3.0
    eye_l = (_dist(p, 37, 41) + _dist(p, 38, 40)) / (2.0 * max(_dist(p, 36, 39), 1e-6))
    eye_r = (_dist(p, 43, 47) + _dist(p, 44, 46)) / (2.0 * max(_dist(p, 42, 45), 1e-6))
    jaw_mid, jaw = (p[0] + p[16]) / 2.0, max(_dist(p, 0, 16), 1e-6)
    eye_mid = (left + right) / 2.0
    pitch = (p[30, 1] - eye_mid[1]) / max(p[8, 1] - eye_mid[1], 1e-6)
    return np.array(
        [
            inner / eyes,
            _dist(p, 51, 57) / eyes,
            _dist(p, 48, 54) / eyes,
            eye_l,
            eye_r,
            (p[30, 0] - jaw_mid[0]) / jaw,
            pitch,
        ]
    )


def rest_frames(features: np.ndarray) -> np.ndarray:
    """Which faces show a person at rest: mouth closed (inner opening under :data:`REST_OPENING`)
    and eyes open (at least :data:`REST_EYES` of the mean eye opening); all faces where none does.

    Their mean is the person's rest shape and rest features: the plain mean of a short clip is
    biased by what it shows (a clip of "O" mouths has an "O" mean, and an "O" then looks like rest).

    Args:
        features: ``(N, 7)`` :func:`expression_features` of one person's faces.

    Returns:
        ``(N,)`` bool.
    """
    f = np.asarray(features, np.float64)
    eyes = f[:, 3:5].mean(1)
    rest = (f[:, 0] < REST_OPENING) & (eyes >= REST_EYES * eyes.mean())
    return rest if rest.any() else np.ones(len(f), bool)


def match_cost(features: np.ndarray, query: np.ndarray, spread: np.ndarray) -> np.ndarray:
    """How far each target face is from ``query``: per feature the squared distance in the
    target's standard deviations (``spread``), capped at :data:`MISMATCH_CAP`, weighted by
    :data:`WEIGHTS` and summed.

    Args:
        features: ``(N, 7)`` the target's :func:`expression_features`.
        query: ``(7,)`` the source face's, personal offsets applied.
        spread: ``(7,)`` the target's standard deviation per feature.

    Returns:
        ``(N,)`` float64.
    """
    return (np.minimum(((features - query) / spread) ** 2, MISMATCH_CAP) * WEIGHTS).sum(1)


def set_mouth_opening(points: np.ndarray, opening: float) -> np.ndarray:
    """``points`` with the lower lip and chin moved down (or up) so the inner mouth opening is
    ``opening`` (per eye distance, as :func:`expression_features` measures it); upright faces.

    Returns:
        ``(68, 2)`` float64; the lips never cross (the opening stays >= 0).
    """
    p = np.asarray(points, np.float64).copy()
    features = expression_features(p)
    eyes = float(np.linalg.norm(p[36:42].mean(0) - p[42:48].mean(0)))
    shift = (max(opening, 0.0) - features[0]) * eyes
    p[LOWER_LIP, 1] += shift
    p[CHIN, 1] += shift * CHIN_SHARE
    return p


def set_eye_openings(points: np.ndarray, openings: np.ndarray) -> np.ndarray:
    """``points`` with each eye's lids moved apart (or together) about their middles so its
    opening is ``openings[e]`` (per eye width, as :func:`expression_features` 3 and 4 measure it).

    Returns:
        ``(68, 2)`` float64; an eye drawn shut stays shut (its lids meet, never cross).
    """
    p = np.asarray(points, np.float64).copy()
    for e, eye in enumerate(EYES):
        pairs = LIDS[2 * e : 2 * e + 2]
        width = max(_dist(p, eye[0], eye[3]), 1e-6)
        now = np.mean([_dist(p, up, low) for up, low in pairs]) / width
        if now <= 1e-6:
            continue
        factor = max(float(openings[e]), 0.0) / now
        for up, low in pairs:
            mid = (p[up] + p[low]) / 2.0
            p[up], p[low] = mid + (p[up] - mid) * factor, mid + (p[low] - mid) * factor
    return p


class RunningRest:
    """The source's rest shape and features as its faces come (:func:`rest_frames`, one face at a
    time): the mean of the faces so far with the mouth closed and the eyes open (at least
    :data:`REST_EYES` of the mean eye opening so far, judged as each face comes); the mean of all
    of them until :data:`MIN_REST` are."""

    def __init__(self) -> None:
        self.seen, self.at_rest = 0, 0
        self._eyes = 0.0  # the sum of the eye openings seen
        self._all = (np.zeros((68, 2)), np.zeros(len(FEATURES)))  # sums of points and features
        self._rest = (np.zeros((68, 2)), np.zeros(len(FEATURES)))

    def add(self, points: np.ndarray, features: np.ndarray) -> None:
        """Count one face: its ``(68, 2)`` landmarks and :func:`expression_features`."""
        eyes = float(features[3:5].mean())
        self.seen += 1
        self._eyes += eyes
        self._all = (self._all[0] + points, self._all[1] + features)
        if features[0] < REST_OPENING and eyes >= REST_EYES * self._eyes / self.seen:
            self.at_rest += 1
            self._rest = (self._rest[0] + points, self._rest[1] + features)

    @property
    def rested(self) -> bool:
        """Whether enough faces were at rest (:data:`MIN_REST`) for their mean to be the rest."""
        return self.at_rest >= MIN_REST

    def rest(self) -> tuple[np.ndarray, np.ndarray]:
        """The rest landmarks ``(68, 2)`` and features ``(7,)`` (zeros before any face)."""
        n, (points, features) = (self.at_rest, self._rest) if self.rested else (max(self.seen, 1), self._all)
        return points / n, features / n
