"""Evaluation: robustness from attention, English ASR errors, DNSMOS, MCD, and reports.

Example:
    >>> from tf_tacokd.evaluate import run_evaluation
    >>> run_evaluation(["runs/fr", "runs/kd"], "eval/hard", names=["FR", "KD"])  # doctest: +SKIP
"""

from .alignment import AlignmentMetrics, analyze_alignment, diagonal_score, focus_rate
from .report import paired_comparison, seed_comparison, summarize, write_report
from .runner import METRICS, System, evaluate_systems, run_evaluation
from .testsets import TestSentence, builtin_hard, load_sentences

__all__ = ["METRICS", "AlignmentMetrics", "System", "TestSentence", "analyze_alignment", "builtin_hard",
           "diagonal_score", "evaluate_systems", "focus_rate", "load_sentences", "paired_comparison",
           "run_evaluation", "seed_comparison", "summarize", "write_report"]
