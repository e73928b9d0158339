"""Dataset loaders: exact counts on the real files (../shared/data), local files, clear errors."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from fdd.config import SourceConfig
from fdd.data import LOADERS, get_loader, load_source
from fdd.data.files import DataFormatError, DataUnavailableError

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data"
FIX = Path(__file__).resolve().parent / "fixtures"
needs_data = pytest.mark.skipif(not DATA.is_dir(), reason="../shared/data not present")


def src(loader: str, **kw) -> SourceConfig:
    return SourceConfig(loader=loader, **kw)


# ---------------------------------------------------------------------------- real files
@needs_data
@pytest.mark.parametrize("split,n", [("train", 7473), ("test", 1319)])
def test_gsm8k_counts(split, n):
    r = load_source(src("gsm8k", split=split, path=str(DATA)))
    assert len(r.problems) == n and not r.skipped
    assert len({p.id for p in r.problems}) == n
    assert all(p.id.startswith(f"gsm8k-{split}-") and p.source == f"gsm8k-{split}" for p in r.problems)


@needs_data
def test_gsm8k_answers_and_annotations():
    probs = {p.question[:40]: p for p in load_source(src("gsm8k", split="test", path=str(DATA))).problems}
    josh = next(p for q, p in probs.items() if q.startswith("Josh decides to try flipping a house"))
    assert josh.answer == 70000.0  # "#### 70000", with "$70,000" in the text
    assert josh.meta["annotations"][0] == "80000+50000=130000"


@needs_data
def test_gsm8k_thousands_comma_after_hashes():
    r = load_source(src("gsm8k", split="train", path=str(DATA)))
    big = [p for p in r.problems if "#### " in p.meta["rationale"] and "," in p.meta["rationale"].rsplit("####", 1)[1]]
    assert big, "GSM8K train has answers written with thousands commas"
    for p in big:
        assert p.answer == float(p.meta["rationale"].rsplit("####", 1)[1].replace(",", ""))


@needs_data
def test_svamp():
    r = load_source(src("svamp", split="test", path=str(DATA)))
    assert len(r.problems) == 1000 and not r.skipped
    p = r.problems[0]
    assert p.id == "svamp-chal-1"
    assert p.question == (
        "Each pack of dvds costs 76 dollars. If there is a discount of 25 dollars on each pack "
        "How much do you have to pay to buy each pack?"
    )
    assert p.answer == 51.0 and p.meta["equation"] == "( 76.0 - 25.0 )"


@needs_data
def test_multiarith():
    r = load_source(src("multiarith", split="test", path=str(DATA)))
    assert len(r.problems) == 600 and not r.skipped
    assert r.problems[0].id == "multiarith-0" and r.problems[0].answer == 39.0
    assert r.problems[0].meta["equations"] == ["X=((32.0+42.0)-35.0)"]
    assert not r.problems[0].question.startswith(" ")


@needs_data
def test_asdiv_skips_non_numeric_rows_with_reasons():
    r = load_source(src("asdiv", split="test", path=str(DATA)))
    skipped = sum(r.skipped.values())
    assert len(r.problems) + skipped == 2305
    assert skipped > 0
    # The exact breakdown on the published file (see the loader docstring for what each means).
    assert r.skipped == {"multiple answers": 90, "ratio or clock time": 61, "non-numeric answer": 61}
    assert len(r.problems) == 2093
    for ids in r.examples.values():
        assert ids and all(i.startswith("asdiv-nluds-") for i in ids)
    by_id = {p.id: p for p in r.problems}
    assert by_id["asdiv-nluds-0001"].answer == 9.0  # "9 (apples)"
    assert by_id["asdiv-nluds-0001"].meta["formula"] == "7+2=9"


@needs_data
@pytest.mark.parametrize("path", ["{D}", "{D}/svamp", "{D}/svamp/SVAMP.json"])
def test_path_may_be_root_subfolder_or_file(path):
    r = load_source(src("svamp", path=path.format(D=DATA)))
    assert len(r.problems) == 1000


@needs_data
def test_relative_path_from_repo_root(monkeypatch):
    monkeypatch.chdir(REPO)
    assert len(load_source(src("multiarith", path="../shared/data")).problems) == 600


@needs_data
def test_shuffle_limit_deterministic_and_dictconfig():
    spec = OmegaConf.structured(src("svamp", path=str(DATA), shuffle=True, limit=20))
    a = [p.id for p in load_source(spec, seed=3).problems]
    b = [p.id for p in load_source(spec, seed=3).problems]
    c = [p.id for p in load_source(spec, seed=4).problems]
    assert a == b and len(a) == 20 and a != c
    unshuffled = [p.id for p in load_source(src("svamp", path=str(DATA), limit=5)).problems]
    assert unshuffled == [f"svamp-chal-{i}" for i in range(1, 6)]


@needs_data
def test_missing_file_in_data_folder(tmp_path):
    with pytest.raises(DataUnavailableError, match=r"gsm8k/validation\.jsonl"):
        load_source(src("gsm8k", split="validation", path=str(DATA)))


# ---------------------------------------------------------------------------- local
def test_local_jsonl_custom_fields():
    r = load_source(
        src(
            "local",
            path=str(FIX / "local_problems.jsonl"),
            question_field="problem",
            answer_field="solution",
            id_field="uid",
        )
    )
    got = {p.id: p.answer for p in r.problems}
    assert got == {
        "local-local_problems-a1": 7.0,
        "local-local_problems-a2": 1280.0,
        "local-local_problems-a3": 5.0,
        "local-local_problems-a5": 1.5,
    }
    assert r.skipped == {"non-numeric answer": 1} and r.examples["non-numeric answer"] == ["local-local_problems-a4"]


def test_local_json_wrapped_list_and_content_ids():
    spec = src("local", path=str(FIX / "local_problems.json"), question_field="q", answer_field="a")
    r1, r2 = load_source(spec), load_source(spec)
    assert [p.answer for p in r1.problems] == [7.0, 6.0]
    assert [p.id for p in r1.problems] == [p.id for p in r2.problems]  # content hashes are stable
    assert r1.skipped == {"non-numeric answer": 1}


def test_local_csv_with_format_override(tmp_path):
    r = load_source(src("local", path=str(FIX / "local_problems.csv"), id_field="id"))
    assert [(p.id, p.answer) for p in r.problems] == [
        ("local-local_problems-c1", 7.0),
        ("local-local_problems-c2", -5.0),
    ]
    # The same content under an unknown suffix, read with format=csv.
    odd = tmp_path / "problems.txt"
    odd.write_text((FIX / "local_problems.csv").read_text())
    assert len(load_source(src("local", path=str(odd), format="csv")).problems) == 2


def test_local_missing_field_is_a_clear_error():
    with pytest.raises(DataFormatError) as e:
        load_source(src("local", path=str(FIX / "local_missing_field.jsonl")))
    msg = str(e.value)
    assert "'answer'" in msg and "local_missing_field.jsonl" in msg and "row 1" in msg


def test_local_wrong_field_name_is_a_clear_error():
    with pytest.raises(DataFormatError, match=r"missing field 'text'"):
        load_source(src("local", path=str(FIX / "local_problems.jsonl"), question_field="text"))


def test_malformed_json_names_the_file_and_line(tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"question": "q?", "answer": 1}\n{"question": oops}\n')
    with pytest.raises(DataFormatError, match=r"bad.jsonl:2: not valid JSON"):
        load_source(src("local", path=str(bad)))


def test_missing_file_is_a_clear_error(tmp_path):
    missing = tmp_path / "nope.jsonl"
    with pytest.raises(DataUnavailableError, match="nope.jsonl"):
        load_source(src("local", path=str(missing)))
    with pytest.raises(DataUnavailableError, match=r"svamp/SVAMP\.json"):
        load_source(src("svamp", path=str(tmp_path)))


def test_registry():
    assert set(LOADERS) == {"gsm8k", "svamp", "asdiv", "multiarith", "local", "synthetic"}
    for name in ("gsm8k", "svamp", "asdiv", "multiarith", "local"):
        assert callable(get_loader(name))
    with pytest.raises(ValueError, match="unknown loader"):
        get_loader("mnist")


def test_hub_unreachable_raises_data_unavailable(tmp_path):
    """Offline (no cache) the Hub path fails fast with advice to use dataset.path=.

    Run in a subprocess: ``datasets`` reads HF_HUB_OFFLINE when it is first imported.
    """
    env = dict(
        os.environ,
        HF_HUB_OFFLINE="1",
        HF_DATASETS_OFFLINE="1",
        HF_HOME=str(tmp_path / "hf"),
        HF_DATASETS_CACHE=str(tmp_path / "hf" / "datasets"),
        PYTHONPATH=str(REPO),
    )
    code = (
        "from fdd.config import SourceConfig\nfrom fdd.data import load_source\n"
        "from fdd.data.files import DataUnavailableError\n"
        "try:\n    load_source(SourceConfig(loader='gsm8k', split='test'))\n"
        "except DataUnavailableError as e:\n    print('OK', e)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120, cwd=REPO)
    assert out.stdout.startswith("OK"), out.stdout + out.stderr
    assert "openai/gsm8k" in out.stdout and "dataset.path=" in out.stdout


def test_an_empty_held_out_set_stops_at_start_up(tmp_path):
    """A held-out set with no problems logged accuracy 0.000 of 0 problems every round (issue 23)."""
    from fdd.config import validate
    from fdd.data import load_problems
    from tests.conftest import compose_cfg

    (tmp_path / "empty.jsonl").write_text("")
    overrides = [
        "dataset.train.n=20",
        "dataset.eval.synthetic.loader=local",
        f"dataset.eval.synthetic.path={tmp_path}/empty.jsonl",
    ]
    cfg = validate(compose_cfg(overrides, tmp_path))
    with pytest.raises(DataUnavailableError, match=r"held-out set\(s\) synthetic yielded no problems"):
        load_problems(cfg)
