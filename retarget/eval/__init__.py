"""Measuring translated videos: temporal consistency, fidelity to a ground truth, faces."""
