"""fdd: Feedback-Driven Distillation of mathematical reasoning (arXiv 2411.14698)."""

__version__ = "0.1.0"
