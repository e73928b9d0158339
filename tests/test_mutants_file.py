"""scripts/mutants.yaml still fits the code: every mutant's edit finds its text exactly once, and
every group names test files that exist (a stale list would fail the mutation check at once)."""

from __future__ import annotations

import importlib.util
import sys

import pytest

from tests.conftest import ROOT


def _script():
    spec = importlib.util.spec_from_file_location("mutation_check", ROOT / "scripts" / "mutation_check.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod  # dataclasses look their module up while the class is built
    spec.loader.exec_module(mod)
    return mod


def test_every_mutant_applies_once_and_changes_its_module():
    tests_of, mutants = _script().load_mutants()
    assert len(mutants) >= 50
    for files in tests_of.values():
        assert all((ROOT / f).is_file() for f in files), files
    for m in mutants:
        text = (ROOT / m.path).read_text()
        for old, new in m.edits:
            assert text.count(old) == 1, (m.id, old)
            assert old != new, m.id
            text = text.replace(old, new)


def test_a_malformed_entry_is_named(tmp_path):
    bad = tmp_path / "mutants.yaml"
    bad.write_text("tests: {verify: [tests/test_verify.py]}\nmutants:\n- id: verify.x\n  path: fdd/method/verify.py\n")
    with pytest.raises(SystemExit, match=r"mutant #1 lacks 'what'|mutant #1 lacks 'edits'"):
        _script().load_mutants(bad)
