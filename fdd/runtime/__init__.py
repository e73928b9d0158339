"""Run plumbing: stages and resume, run identity, failures, seeding, ranks, files, GPU plan, model loading, registries."""
