"""Hydra configs shipped inside the package (Hydra reads them as pkg://fdd.conf)."""
