"""Measuring translated videos: temporal consistency, fidelity to a ground truth, faces.

``evaluate(EvalConfig) -> EvalResult`` (:mod:`retarget.eval.evaluate`) scores video
files; ``score_frames(outputs, sources, truth)`` (:mod:`retarget.eval.score`) scores
in-memory frame lists. See docs/eval.md.
"""
