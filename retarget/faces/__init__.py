"""Faces: detection backends, alignment, temporal smoothing, tracking and paste-back.

See docs/faces.md. ``FaceAligner`` turns frames into aligned, temporally smooth face
crops (used by ``extract`` and ``render``); ``paste_back`` puts a translated crop back
into its frame.
"""

from retarget.faces.align import crop_matrix, estimate_similarity, eye_centres, template_points, warp_crop
from retarget.faces.aligner import AlignedFace, Aligner, FaceAligner
from retarget.faces.backends import FaceBackend, get_backend
from retarget.faces.continuity import Continuity
from retarget.faces.paste import face_mask, paste_back
from retarget.faces.smooth import OneEuroFilter, TransformSmoother

__all__ = [
    "AlignedFace",
    "Aligner",
    "Continuity",
    "FaceAligner",
    "FaceBackend",
    "OneEuroFilter",
    "TransformSmoother",
    "crop_matrix",
    "estimate_similarity",
    "eye_centres",
    "face_mask",
    "get_backend",
    "paste_back",
    "template_points",
    "warp_crop",
]
