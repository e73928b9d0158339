"""The names of the pluggable parts, in one place: teacher backends, data loaders and rationale
formats, each a name -> ``"module:attribute"`` string so that reading the names (``fdd.config``
validates against them) imports nothing heavy. The packages import their part from here."""

from __future__ import annotations

import importlib
from typing import Dict

# every class takes (cfg, *, cache_dir, seed)
TEACHER_BACKENDS: Dict[str, str] = {
    "oracle": "fdd.sim.oracle:OracleTeacher",
    "openai": "fdd.teachers.openai:OpenAITeacher",
    "vllm": "fdd.teachers.vllm:VLLMTeacher",
    "hf": "fdd.teachers.hf:HFTeacher",
    "gold": "fdd.teachers.gold:GoldTeacher",
}

# every function is load(spec, seed) -> LoadResult
DATA_LOADERS: Dict[str, str] = {
    "gsm8k": "fdd.data.gsm8k:load",
    "svamp": "fdd.data.svamp:load",
    "asdiv": "fdd.data.asdiv:load",
    "multiarith": "fdd.data.multiarith:load",
    "local": "fdd.data.local:load",
    "synthetic": "fdd.sim.world:load",
}

RATIONALE_FORMATS: Dict[str, str] = {
    "pot": "fdd.reasoning.formats:PoTFormat",
    "cot": "fdd.reasoning.formats:CoTFormat",
}


def resolve(target: str):
    """``"module:attribute"`` -> the attribute (its module imported now)."""
    module, _, name = target.partition(":")
    return getattr(importlib.import_module(module), name)
