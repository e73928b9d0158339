"""Handover (issue 13): final/ (student, model card, parquet dataset), push_to_hub, fdd solve,
the fdd command, dry-run cost, wandb curves and groups, the offline probe, Optuna sweeps."""

from __future__ import annotations

import configparser
import importlib
import json
import os
import subprocess
import sys
from unittest import mock

import pytest

from tests.conftest import ROOT, compose_cfg

ENV = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}


def _python_m(*args: str, cwd=ROOT, timeout: int = 300) -> subprocess.CompletedProcess:
    """``python -m <args>`` as a user types it, output captured."""
    return subprocess.run(
        [sys.executable, "-m", *args], capture_output=True, text=True, env=ENV, cwd=cwd, timeout=timeout
    )


def _rows():
    return [
        {"round": 0, "distill_size": 3},
        {"round": 1, "accuracy": {"a": 0.5, "b": 0.1}, "trained_on": 3},
        {"round": 2, "accuracy": {"a": 0.2, "b": 0.2}, "trained_on": 5},
    ]


def test_choose_round_last_best_and_by_set():
    from fdd.reporting.final import choose_round

    assert choose_round(_rows(), "last")["round"] == 2
    best = choose_round(_rows(), "best", "mean_accuracy")
    assert (best["round"], best["value"]) == (1, pytest.approx(0.3))
    assert choose_round(_rows(), "best", "b")["round"] == 2
    assert choose_round([{"round": 0}], "last") is None
    with pytest.raises(ValueError, match="last|best"):
        choose_round(_rows(), "first")


def test_final_config_is_validated(tmp_path):
    from fdd.config import ConfigError, validate

    with pytest.raises(ConfigError, match="final.metric"):
        validate(compose_cfg(["final.metric=nope"], tmp_path))
    with pytest.raises(ConfigError, match="push_to_hub"):
        validate(compose_cfg(["final.push_to_hub=true"], tmp_path))


@pytest.fixture
def fake_run(tmp_path, tiny_cfg):
    """A run directory with two rounds' tiny random students and distillation sets (no fit)."""
    from omegaconf import OmegaConf
    from transformers import AutoConfig, AutoModelForCausalLM

    from fdd.runtime.io import write_jsonl
    from fdd.students.tokenizer import train_wordlevel

    run = tmp_path / "run"
    tok = train_wordlevel(["Question: a b\nProgram:", "answer = 1 + 2"])
    conf = AutoConfig.for_model(
        "llama",
        vocab_size=len(tok),
        hidden_size=16,
        intermediate_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        num_key_value_heads=2,
        pad_token_id=tok.pad_token_id,
    )
    model = AutoModelForCausalLM.from_config(conf)
    for r in (1, 2):
        model.save_pretrained(run / f"round_{r}" / "checkpoint")
        tok.save_pretrained(run / f"round_{r}" / "checkpoint")
    seed = {
        "id": "s1",
        "question": "a b",
        "answer": 3.0,
        "source": "synthetic",
        "rationale": "answer = 1 + 2",
        "parent_id": None,
        "round": 0,
        "branch": "seed",
        "meta": {"steps": 1},
    }
    child = {**seed, "id": "c1", "question": "a b c", "parent_id": "s1", "round": 1, "branch": "hard-similar"}
    write_jsonl(run / "round_0" / "distill.jsonl", [seed])
    write_jsonl(run / "round_1" / "distill.jsonl", [seed, child])
    cfg = OmegaConf.to_container(tiny_cfg(run_dir=run), resolve=True)
    return run, cfg


def test_final_folder_loads_with_transformers_and_datasets(fake_run):
    import datasets
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from fdd.reporting.final import write_final

    run, cfg = fake_run
    cfg["final"]["select"] = "best"
    summary = write_final(run, cfg, _rows(), hub_datasets=["openai/gsm8k"])
    assert summary["round"] == 1 and summary["dataset_rows"] == 2
    final = run / "final"
    AutoModelForCausalLM.from_pretrained(final)
    AutoTokenizer.from_pretrained(final)
    ds = datasets.load_dataset("parquet", data_files=str(final / "dataset" / "data" / "*.parquet"), split="train")
    assert ds.column_names == [
        "id",
        "question",
        "answer",
        "source",
        "rationale",
        "parent_id",
        "round",
        "branch",
        "meta",
    ]
    assert ds[1]["parent_id"] == "s1" and ds[1]["branch"] == "hard-similar" and ds[1]["round"] == 1
    card = (final / "README.md").read_text()
    assert card.startswith("---\n") and "library_name: transformers" in card
    assert "datasets:\n- openai/gsm8k\n" in card  # the card's metadata names what the run read
    assert "Question: {question}\nProgram:" in card  # the prompt format the student expects
    assert "| **1** | 0.500 | 0.100 | 0.300 |" in card  # per-set accuracy per round, chosen round in bold
    assert "config_name: default" in (final / "dataset" / "README.md").read_text()
    assert json.loads((final / "fdd_student.json").read_text())["rationale"] == "pot"
    # done: a rerun does not rebuild it
    (final / "README.md").write_text("kept")
    assert write_final(run, cfg, _rows())["round"] == 1 and (final / "README.md").read_text() == "kept"
    cfg["final"]["select"] = "last"  # another selection rule: rebuilt
    assert write_final(run, cfg, _rows())["round"] == 2 and (final / "README.md").read_text() != "kept"


def test_final_follows_a_run_extended_by_more_rounds(fake_run):
    """rounds=1 first, then the same run extended to rounds=2: final/ moves to the new last round."""
    from fdd.reporting.final import write_final

    run, cfg = fake_run
    assert write_final(run, cfg, _rows()[:2])["round"] == 1
    assert write_final(run, cfg, _rows()[:2])["round"] == 1  # unchanged: skipped
    assert write_final(run, cfg, _rows())["round"] == 2
    assert json.loads((run / "final" / "DONE.json").read_text())["round"] == 2


def test_final_best_is_rebuilt_when_the_run_grows_even_if_the_same_round_wins(fake_run):
    """select=best: round 2 is worse, so round 1 stays chosen, but the card and the distillation set grow."""
    from fdd.reporting.final import write_final
    from fdd.runtime.io import read_jsonl, write_jsonl

    run, cfg = fake_run
    cfg["final"]["select"], cfg["rounds"] = "best", 1
    assert write_final(run, cfg, _rows()[:2])["dataset_rows"] == 2  # round_1/distill.jsonl
    items = read_jsonl(run / "round_1" / "distill.jsonl")
    write_jsonl(run / "round_2" / "distill.jsonl", items + [{**items[-1], "id": "c2", "round": 2}])
    cfg["rounds"] = 2  # the same run, extended
    done = write_final(run, cfg, _rows())
    assert (done["round"], done["last_round"], done["dataset_rows"]) == (1, 2, 3)
    assert "| 2 | 0.200 | 0.200 | 0.200 |" in (run / "final" / "README.md").read_text()


def test_push_to_hub_makes_the_exact_calls_once(fake_run):
    from fdd.reporting.final import run_final

    run, cfg = fake_run
    cfg["final"].update(push_to_hub=True, hub={"model_id": "me/student", "dataset_id": "me/distill", "private": True})
    api = mock.MagicMock()
    api.upload_folder.return_value = mock.Mock(commit_url="https://hub/commit/1")
    run_final(run, cfg, _rows(), api=api)
    final = str(run / "final")
    assert api.create_repo.call_args_list == [
        mock.call("me/student", repo_type="model", private=True, exist_ok=True),
        mock.call("me/distill", repo_type="dataset", private=True, exist_ok=True),
    ]
    assert api.upload_folder.call_args_list == [
        mock.call(
            folder_path=final,
            repo_id="me/student",
            repo_type="model",
            ignore_patterns=["dataset/*", "DONE.json"],
            commit_message="fdd: distilled student",
        ),
        mock.call(
            folder_path=str(run / "final" / "dataset"),
            repo_id="me/distill",
            repo_type="dataset",
            commit_message="fdd: final distillation set",
        ),
    ]
    run_final(run, cfg, _rows(), api=api)  # resumed: already pushed to the same repos
    assert api.upload_folder.call_count == 2
    assert "- me/distill" in (run / "final" / "README.md").read_text()  # the card's datasets metadata names it


def test_model_card_lists_hub_datasets_and_base_model():
    from fdd.data import hub_ids
    from fdd.reporting.model_card import base_model

    ds = {
        "train": {"loader": "gsm8k"},
        "eval": {"svamp": {"loader": "svamp"}, "x": {"loader": "local", "path": "a"}, "s": {"loader": "synthetic"}},
    }
    assert hub_ids(ds) == ["openai/gsm8k", "ChilleD/SVAMP"]  # each loader's own HUB_NAME
    assert hub_ids({"train": {"loader": "gsm8k", "hub_name": "me/gsm8k-fixed"}}) == ["me/gsm8k-fixed"]
    assert base_model({"pretrained": "google/flan-t5-base"}) == "google/flan-t5-base"
    assert base_model({"pretrained": "/models/x"}) is None and base_model({"pretrained": None}) is None


def test_dry_run_reports_tokens_and_cost(tmp_path, capsys):
    from fdd.config import validate
    from fdd.data import load_problems
    from fdd.main import dry_run

    cfg = validate(
        compose_cfg(
            [
                "dataset.train.n=20",
                "dataset.eval.synthetic.n=5",
                "rounds=3",
                "teacher.price.input_per_mtok=2.0",
                "teacher.price.output_per_mtok=10.0",
            ],
            tmp_path,
        )
    )
    train, evals = load_problems(cfg)
    out = dry_run(cfg, train, evals)["teacher_tokens"]
    init = out["stages"]["init"]
    assert init["calls"] == 20 and init["input_tokens"] > 20 * 30  # the rationale prompt is ~60 tokens
    assert set(out["stages"]) == {
        "init",
        "round_1_new_problems",
        "round_1_rationales",
        "round_2_new_problems",
        "round_2_rationales",
    }
    assert out["stages"]["round_1_rationales"]["calls"] == 20 * 3  # k=3 rationales per new problem
    t = out["total"]
    assert out["cost"]["estimate"] == pytest.approx((t["input_tokens"] * 2 + t["output_tokens"] * 10) / 1e6, abs=1e-4)
    assert "teacher_tokens" in capsys.readouterr().out


def test_variant_group_drops_seed_and_logging_keys():
    from fdd.reporting.tracking import variant_group

    assert (
        variant_group("fdd", ["seed=2", "augmentation=none", "logger.mode=offline", "hydra/launcher=slurm"])
        == "fdd/augmentation=none"
    )
    assert variant_group("fdd", ["seed=1"]) == variant_group("fdd", ["seed=2"]) == "fdd"
    long_a, long_b = (variant_group("fdd", [f"student.lr={v}", "x=" + "y" * 200, "seed=0"]) for v in (1, 2))
    assert len(long_a) == 128 and long_a != long_b
    assert long_a == variant_group("fdd", ["student.lr=1", "x=" + "y" * 200, "seed=5"])


def test_curves_reach_the_wandb_run_under_a_round_prefix():
    from fdd.reporting.curves import WandbCurves

    run = mock.MagicMock()
    curves = WandbCurves(run, 2)
    run.define_metric.assert_any_call("train/round_2/*", step_metric="train/round_2/step")
    curves.log_metrics({"train/loss_step": 1.5, "lr-AdamW": 0.01, "epoch": 0}, step=7)
    run.log.assert_called_with(
        {"train/round_2/loss_step": 1.5, "train/round_2/lr-AdamW": 0.01, "train/round_2/step": 7}
    )


def test_offline_is_detected_by_one_probe(monkeypatch):
    import socket

    from huggingface_hub import constants

    from fdd.runtime import modeling

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(modeling, "_HUB_PROBED", None)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    calls = []

    def refuse(*a, **k):
        calls.append(a)
        raise OSError("network unreachable")

    monkeypatch.setattr(socket, "create_connection", refuse)
    assert modeling.hub_offline() and modeling.hub_offline()
    assert len(calls) == 1 and constants.HF_HUB_OFFLINE and os.environ["HF_HUB_OFFLINE"] == "1"


def test_missing_plugin_names_the_extra(monkeypatch):
    from fdd.runtime import plugins

    monkeypatch.setattr(plugins, "_installed", lambda module: False)
    assert ".[slurm]" in plugins.missing_plugin(["hydra/launcher=slurm"])
    assert ".[optuna]" in plugins.missing_plugin(["-m", "hparams_search=optuna"])
    assert plugins.missing_plugin(["seed=1"]) is None


def test_entry_points_resolve():
    parser = configparser.ConfigParser()
    parser.read(ROOT / "setup.cfg")
    scripts = dict(line.split(" = ") for line in parser["options.entry_points"]["console_scripts"].strip().splitlines())
    for target in scripts.values():
        module, func = target.split(":")
        assert callable(getattr(importlib.import_module(module), func))
    assert scripts["fdd"] == "fdd.cli:main"


@pytest.mark.parametrize(
    "cmd",
    [
        [sys.executable, "-m", "fdd", "--help"],
        [sys.executable, "-c", "import sys; from fdd.cli import main; sys.exit(main())", "--help"],
    ],
)
def test_help(cmd):
    """``python -m fdd --help`` and the ``fdd`` console script (fdd.cli:main) both print usage."""
    out = subprocess.run(cmd, capture_output=True, text=True, env=ENV, cwd=ROOT, timeout=300)
    assert out.returncode == 0, out.stderr
    assert "fdd solve STUDENT_DIR" in out.stdout and "hparams_search: optuna" in out.stdout


@pytest.mark.slow
def test_default_like_run_hands_over_a_student_that_solves_held_out_problems(tmp_path):
    """A small run through ``python -m fdd``: final/ exists, ``fdd solve`` answers a held-out
    problem the student got right in its evaluation, ``fdd report`` reads the run."""
    from fdd.config import validate
    from fdd.data import load_problems

    run = tmp_path / "run"
    args = [
        "rounds=1",
        "student.epochs=20",
        "dataset.train.n=200",
        "dataset.eval.synthetic.n=40",
        "logger=none",
        "trainer.enable_progress_bar=false",
    ]
    out = _python_m("fdd", *args, f"hydra.run.dir={run}", f"paths.cache_dir={tmp_path}/c", timeout=900)
    assert out.returncode == 0, out.stderr[-3000:]
    assert (run / "final" / "DONE.json").is_file()
    _, evals = load_problems(validate(compose_cfg(args, run)))
    by_id = {p.id: p for p in evals["synthetic"]}
    solved = [json.loads(line) for line in (run / "round_1" / "eval_synthetic.jsonl").open()]
    solved = [p for p in solved if p["correct"]]
    assert solved, "the student solved no held-out problem"
    problem = by_id[solved[0]["id"]]
    out = _python_m("fdd", "solve", str(run / "final"), problem.question)
    assert out.returncode == 0, out.stderr
    assert float(out.stdout.strip().splitlines()[-1]) == pytest.approx(problem.answer)
    out = _python_m("fdd", "report", str(run))
    assert out.returncode == 0, out.stderr
    assert (run / "report" / "report.md").is_file()


@pytest.mark.slow
def test_optuna_sweep_reports_the_best_value(tmp_path):
    sweep = tmp_path / "multirun"
    out = _python_m(
        "fdd.main",
        "-m",
        "hparams_search=optuna",
        "hydra.sweeper.n_trials=2",
        "student.lr=choice(0.001,0.003)",
        "rounds=1",
        "student.epochs=1",
        "dataset.train.n=30",
        "dataset.eval.synthetic.n=10",
        "logger=none",
        "trainer.enable_progress_bar=false",
        f"hydra.sweep.dir={sweep}",
        cwd=tmp_path,
        timeout=900,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    import yaml

    res = yaml.safe_load((sweep / "optimization_results.yaml").read_text())
    assert res["best_params"]["student.lr"] in (0.001, 0.003)
    metrics = [
        json.loads(line)
        for d in sweep.iterdir()
        if (d / "metrics.jsonl").is_file()
        for line in (d / "metrics.jsonl").open()
    ]
    finals = [sum(r["accuracy"].values()) / len(r["accuracy"]) for r in metrics if r["round"] == 1]
    assert len(finals) == 2 and res["best_value"] == pytest.approx(max(finals))


def test_a_user_error_is_printed_once(tmp_path):
    out = _python_m("fdd", "rounds=-1", f"hydra.run.dir={tmp_path}/run")
    assert out.returncode == 2
    assert (out.stdout + out.stderr).count("rounds must be in [0, 1000]") == 1, out.stdout + out.stderr


@pytest.mark.slow
def test_training_curves_and_checkpoints_reach_the_offline_wandb_run(tiny_cfg, tmp_path, one_thread):
    from fdd.main import run
    from tests.wandb_log import iter_wandb_records, wandb_history

    run(tiny_cfg("logger=wandb", "logger.mode=offline", "logger.log_checkpoints=true", "trainer.log_every_n_steps=1"))
    (path,) = (tmp_path / "run").glob("wandb/offline-run-*/run-*.wandb")
    keys = {k for h in wandb_history(path) for k in h}
    for r in (1, 2):
        assert {f"train/round_{r}/loss_step", f"train/round_{r}/step"} <= keys, sorted(keys)
        assert any(k.startswith(f"train/round_{r}/lr-") for k in keys), sorted(keys)
    models = [
        rec.artifact
        for rec in iter_wandb_records(path)
        if rec.WhichOneof("record_type") == "artifact" and rec.artifact.type == "model"
    ]
    assert len(models) == 2  # one version per round's student


def test_long_artifact_names_fit_wandb_and_stay_distinct():
    from fdd.reporting.tracking import artifact_name

    a, b = artifact_name("distill", "x=1," * 60), artifact_name("distill", "x=2," * 60)
    assert len(a) == len(b) == 128 and a != b
    assert artifact_name("distill", "run") == "distill-run"


def test_debug_fast_composes_a_tiny_run(tmp_path):
    from fdd.config import validate

    cfg = validate(compose_cfg(["debug=fast"], tmp_path))
    assert (cfg.rounds, cfg.student.epochs, cfg.dataset.train.limit, cfg.train_subset) == (2, 1, 40, 20)
    assert not cfg.logger.wandb


def test_dry_run_without_prices_says_how_to_set_them(tmp_path, capsys):
    """No price is not a price of 0.0 (issue 24): the estimate is null with a note."""
    from fdd.config import validate
    from fdd.data import load_problems
    from fdd.main import dry_run

    cfg = validate(compose_cfg(["dataset.train.n=20", "dataset.eval.synthetic.n=5", "rounds=2"], tmp_path))
    train, evals = load_problems(cfg)
    cost = dry_run(cfg, train, evals)["teacher_tokens"]["cost"]
    assert cost["estimate"] is None and cost["max"] is None
    assert "teacher.price.input_per_mtok" in cost["note"] and "teacher.price.output_per_mtok" in cost["note"]
    assert "prices unset" in capsys.readouterr().out


@pytest.mark.parametrize("question", [None, 42, "", "   "])
def test_solve_refuses_a_question_that_is_not_text_with_its_line(tmp_path, question):
    """`{"question": null}` was an AttributeError deep in the prompt builder (issue 23)."""
    import json

    from fdd.solve import read_questions

    path = tmp_path / "q.jsonl"
    path.write_text(json.dumps({"question": "Sam has 3 pens. How many?"}) + "\n" + json.dumps({"question": question}))
    with pytest.raises(ValueError, match=r'q\.jsonl:2: each line needs a non-empty "question" field'):
        read_questions(path)
