"""Evaluation: robustness metrics from attention (and, later, ASR and quality measures)."""
