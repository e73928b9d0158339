"""Students learn: on a fixed small set, the mean loss (eval mode) falls after a few epochs, for
causal and seq2seq students, full fine-tuning and LoRA, gradient checkpointing and compile;
and the PoT early stop never cuts a program before its answer line is complete."""

from __future__ import annotations

import pytest
import torch
from omegaconf import OmegaConf

from fdd.reasoning.formats import answer_line_end, get_format
from fdd.runtime.modeling import model_class
from fdd.sim.world import generate, render
from fdd.students.data import Collator
from fdd.students.generate import cut_at_stop
from fdd.students.model import build_model
from fdd.students.student import Student
from fdd.types import Item
from tests.conftest import compose_cfg, requires_smollm2

pytestmark = pytest.mark.usefixtures("one_thread")


CPU = {
    "accelerator": "cpu",
    "devices": 1,
    "precision": 32,
    "enable_progress_bar": False,
    "log_every_n_steps": 1,
    "gradient_clip_val": 1.0,
}


def fixed_items(n: int = 16):
    """``n`` synthetic problems with their gold PoT programs as rationales."""
    return [Item(p.id, p.question, p.answer, p.source, render(p.meta["world"])[1]) for p in generate(n, 0, "train")]


@torch.no_grad()
def mean_loss(model, data, pad_id: int, batch_size: int = 8) -> float:
    """Token-weighted mean cross-entropy over ``data`` in eval mode (no dropout, no noise)."""
    model.eval()
    collate, total, count = Collator(pad_id), 0.0, 0
    for s in range(0, len(data), batch_size):
        batch = collate([data[i] for i in range(s, min(len(data), s + batch_size))])
        n = int((batch["labels"] != -100).sum())
        total += float(model(**batch).loss) * n
        count += n
    return total / count


def loss_before_after(tmp_path, student: str, *overrides: str):
    cfg = compose_cfg([f"student={student}", "logger=none", *overrides], tmp_path / "run")
    scfg = OmegaConf.to_object(cfg.student)
    st = Student(scfg, CPU, get_format("pot"), 0, str(tmp_path / "tok"))
    items = fixed_items()
    data = st._encode(items)
    tok = st.tokenizer()
    before = mean_loss(build_model(scfg, tok, seed=0), data, tok.pad_token_id)  # fit starts from this init
    info = st.fit(items, str(tmp_path / "ckpt"), str(tmp_path / "state"))
    after = mean_loss(model_class(scfg.arch).from_pretrained(str(tmp_path / "ckpt")), data, tok.pad_token_id)
    return before, after, info


TINY = ["student.batch_size=4", "student.epochs=4"]
LORA = ["student.lora.enabled=true", "student.lr=1e-2"]


# LoRA adapters on a random-init network (frozen random embeddings and head) learn far less
# than full fine-tuning in 16 steps, hence the smaller required drop.
@pytest.mark.parametrize(
    "student,extra,factor",
    [
        ("tiny-llama", [], 0.9),
        ("tiny-llama", LORA, 0.97),
        ("tiny-t5", [], 0.9),
        ("tiny-t5", LORA, 0.97),
        ("tiny-llama", ["student.gradient_checkpointing=true"], 0.9),
        ("tiny-llama", ["student.gradient_checkpointing=true", *LORA], 0.97),
        ("tiny-llama", ["student.fast_train=true"], 0.9),
        ("tiny-llama", ["student.packing=true", "student.pack_max_tokens=512"], 0.9),
        ("tiny-llama", ["student.fast_train=true", "student.packing=true", *LORA], 0.97),
        ("tiny-t5", ["student.fast_train=true"], 0.9),
    ],
    ids=[
        "llama-full",
        "llama-lora",
        "t5-full",
        "t5-lora",
        "llama-gc",
        "llama-gc-lora",
        "llama-fast",
        "llama-packed",
        "llama-fast-packed-lora",
        "t5-fast",
    ],
)
def test_tiny_students_loss_falls(tmp_path, student, extra, factor):
    before, after, info = loss_before_after(tmp_path, student, *TINY, *extra)
    assert info["train_steps"] == 16
    assert after < factor * before, (before, after)


@pytest.mark.parametrize("trainer,steps", [({"max_steps": 3}, 3), ({"max_epochs": 1}, 4)], ids=["steps", "epochs"])
def test_trainer_limits_win_over_the_student_config(tmp_path, trainer, steps, caplog):
    """trainer.max_steps / max_epochs, when set, decide the fit (16 items in batches of 4)."""
    cfg = compose_cfg(["student=tiny-llama", "logger=none", *TINY], tmp_path / "run")
    st = Student(OmegaConf.to_object(cfg.student), {**CPU, **trainer}, get_format("pot"), 0, str(tmp_path / "tok"))
    with caplog.at_level("INFO", logger="fdd.students.student"):
        info = st.fit(fixed_items(), str(tmp_path / "ckpt"), str(tmp_path / "state"))
    assert info["train_steps"] == steps
    assert f"trainer.{next(iter(trainer))}=" in caplog.text


def test_gradient_checkpointing_is_on(tmp_path):
    cfg = compose_cfg(["student=tiny-llama", "student.gradient_checkpointing=true", "logger=none"], tmp_path)
    scfg = OmegaConf.to_object(cfg.student)
    st = Student(scfg, CPU, get_format("pot"), 0, str(tmp_path / "tok"))
    model = build_model(scfg, st.tokenizer(), seed=0)
    assert model.is_gradient_checkpointing


@pytest.mark.slow
def test_tiny_llama_compiled_loss_falls(tmp_path):
    before, after, _ = loss_before_after(tmp_path, "tiny-llama", *TINY, "student.compile=true")
    assert after < 0.9 * before, (before, after)


@pytest.mark.slow
@requires_smollm2
@pytest.mark.parametrize("extra", [[], ["student.lora.enabled=true", "student.lr=1e-3"]], ids=["full", "lora"])
def test_smollm2_loss_falls(tmp_path, extra):
    before, after, info = loss_before_after(
        tmp_path, "smollm2-135m", "student.batch_size=4", "student.epochs=1", *extra
    )
    assert info["train_steps"] == 4
    assert after < before, (before, after)


@pytest.mark.parametrize(
    "text,end",
    [
        ("x1 = 3\nanswer = x1\n", len("x1 = 3\nanswer = x1\n")),
        ("x1 = 3\nanswer = x1", None),  # the line may still grow
        ("answer = (3 +\n 4)\n", len("answer = (3 +\n 4)\n")),  # complete only once the bracket closes
        ("answer = (3 +\n", None),
        ("answer = 3 + \\\n", None),  # backslash continuation
        ("def solution():\n    answer = 3\n    return answer\n", None),  # indented: not the program's end
        ("s = '''\nanswer = 1\n'''\nanswer = 2\n", len("s = '''\nanswer = 1\n'''\nanswer = 2\n")),
        ("answer == 3\n", None),
    ],
)
def test_answer_line_end(text, end):
    assert answer_line_end(text) == end


def test_truncate_keeps_the_answer():
    prog = "x1 = 2\nx2 = x1 * 3\nanswer = x2\nprint(answer)\nanswer = 0\n"
    assert cut_at_stop(prog, get_format("pot").stop_rule) == "x1 = 2\nx2 = x1 * 3\nanswer = x2\n"


def test_answer_line_stop_fires_when_the_line_is_complete():
    from transformers import ByT5Tokenizer

    from fdd.students.generate import AnswerLineStop

    tok = ByT5Tokenizer()
    prompt = tok("Q:\n", add_special_tokens=False)["input_ids"]
    program = "x1 = (2 +\n3)\nanswer = (x1 *\n 2)\nprint(answer)\n"
    ids = tok(program, add_special_tokens=False)["input_ids"]
    stop = AnswerLineStop(tok, len(prompt), answer_line_end)
    fired_at = None
    for k in range(1, len(ids) + 1):
        done = stop(torch.tensor([prompt + ids[:k]]), None)
        if done[0] and fired_at is None:
            fired_at = k
    assert tok.decode(ids[:fired_at]) == "x1 = (2 +\n3)\nanswer = (x1 *\n 2)\n"


def test_vllm_backend_is_imported_only_when_chosen(tmp_path):
    import sys

    cfg = compose_cfg(["student=tiny-llama", "student.generation.backend=vllm", "logger=none"], tmp_path)
    st = Student(OmegaConf.to_object(cfg.student), CPU, get_format("pot"), 0, str(tmp_path / "tok"))
    assert "vllm" not in sys.modules  # nothing so far has imported it
    try:
        import vllm  # noqa: F401
    except ImportError:
        with pytest.raises(ImportError, match=r"pip install fdd\[vllm\]"):
            st.generate_texts(["Question: 1 + 1?\nProgram:"], str(tmp_path / "no-ckpt"))
    else:
        pytest.skip("vllm is installed here")


def test_a_launched_rank_rebuilds_the_generator_from_the_spec_alone(tmp_path):
    """What a launched rank receives is the pickled ``GenerationSpec``; from it alone (no
    ``Student``) it loads the saved tokenizer and answers as the student does, stop rule included."""
    import json
    import pickle
    import subprocess
    import sys

    from fdd.students import backends
    from fdd.students.generate import encode_prompts

    cfg = compose_cfg(["student=tiny-llama", "student.generation.stop_at_answer=true", "logger=none"], tmp_path)
    st = Student(OmegaConf.to_object(cfg.student), CPU, get_format("pot"), 0, str(tmp_path / "tok"))
    assert st.spec.stop_rule is answer_line_end and st.spec.trainer_cfg == CPU
    prompts = [f"Question: what is {i} + 2?\nProgram:" for i in range(3)]
    ckpt = st._base_folder()
    want = st.generate_texts(prompts, ckpt)
    enc = encode_prompts(st.tokenizer(), prompts, "causal", st.cfg.max_source_len)
    out = tmp_path / "texts.json"
    backends._generate_worker(pickle.loads(pickle.dumps(st.spec)), enc, ckpt, str(out))
    assert json.loads(out.read_text()) == want
    # the generation side never imports the student back
    code = "import sys, fdd.students.backends; assert 'fdd.students.student' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)
