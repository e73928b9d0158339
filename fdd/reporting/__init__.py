"""What a run shows: metrics tracking, curves, plots, the final student, its card, and reports."""
