"""The names of the pluggable parts, in one place: teacher backends (implementation + config
class), data loaders and rationale formats, each a name -> ``"module:attribute"`` string so that reading the names (``fdd.config``
validates against them) imports nothing heavy. The packages import their part from here."""

from __future__ import annotations

import importlib
from typing import Dict, NamedTuple


class Backend(NamedTuple):
    """One teacher backend: its implementation and the name of its config class in fdd.config."""

    teacher: str  # "module:Class"; every class takes (cfg, *, cache_dir, seed)
    config: str  # a TeacherConfig subclass defined in fdd/config.py


TEACHER_BACKENDS: Dict[str, Backend] = {
    "oracle": Backend("fdd.sim.oracle:OracleTeacher", "OracleTeacherConfig"),
    "openai": Backend("fdd.teachers.openai:OpenAITeacher", "OpenAITeacherConfig"),
    "vllm": Backend("fdd.teachers.vllm:VLLMTeacher", "VLLMTeacherConfig"),
    "hf": Backend("fdd.teachers.hf:HFTeacher", "HFTeacherConfig"),
    "gold": Backend("fdd.teachers.gold:GoldTeacher", "GoldTeacherConfig"),
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
