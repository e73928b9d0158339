"""The FDD method: the round loop and its parts (feedback, augmentation acceptance, grading, cost)."""
