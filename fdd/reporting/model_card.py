"""Model and dataset cards (``README.md`` with Hub YAML metadata) for a run's ``final/``.

The metadata block is written by ``huggingface_hub``'s card classes, so it is what the Hub
parses; the body says what a user of the student must know: the prompt it expects, what its
output is and how to run it, how it scored per round, and the FDD config that made it.
"""

from __future__ import annotations

from typing import Dict, List, Optional, Sequence

from fdd.reasoning.formats import get_format
from fdd.types import RoundMetrics

RUN_PROGRAMS = {
    "pot": (
        "The student writes a **Python program** (Program-of-Thought), not the answer itself. Its answer is "
        "the value the program computes: a `solution()` function's return value, else a top-level "
        "`answer = ...`, else the last number it prints. Run programs in a sandbox (untrusted code): "
        "`fdd solve` does it with `fdd.sandbox.pool`."
    ),
    "cot": (
        "The student writes a **Chain-of-Thought** explanation that ends in `The answer is N.`; the answer is "
        "the number after the last `The answer is`, else in the last `\\boxed{}`, else the last number in the text."
    ),
}


def base_model(student_cfg) -> Optional[str]:
    """The Hub id the student started from; None for random init, a local folder or a GGUF file."""
    pre = student_cfg.get("pretrained")
    if pre and "/" in pre and not pre.startswith((".", "/", "~")):
        return pre
    return None


def accuracy_table(rows: List[Dict], chosen_round: int) -> str:
    """Markdown: one row per round, one column per held-out set (the chosen round in bold)."""
    evaluated = [m for m in map(RoundMetrics.from_row, rows) if m.round > 0 and m.accuracy]
    sets = sorted({k for m in evaluated for k in m.accuracy})
    if not evaluated:
        return "_no round was evaluated_"
    lines = ["| round | " + " | ".join(sets) + " | mean | distill size |", "|---" * (len(sets) + 3) + "|"]
    for m in evaluated:
        cells = [f"{m.accuracy[s]:.3f}" if s in m.accuracy else "" for s in sets] + [f"{m.mean_accuracy():.3f}"]
        mark = "**" if m.round == chosen_round else ""
        trained_on = "" if m.trained_on is None else m.trained_on
        lines.append(f"| {mark}{m.round}{mark} | " + " | ".join(cells) + f" | {trained_on} |")
    return "\n".join(lines)


def model_card(
    cfg: Dict, rows: List[Dict], chosen: Dict, hub_datasets: Sequence[str] = (), dataset_id: Optional[str] = None
) -> str:
    """The student's README.md. ``cfg`` is the resolved run config (a plain dict), ``chosen`` the
    selection (``round``, ``select``, ``metric``, ``value``), ``hub_datasets`` the Hub ids the run's
    sources read (``fdd.data.hub_ids``), ``dataset_id`` where the distillation set is pushed."""
    import yaml
    from huggingface_hub import ModelCard, ModelCardData

    student, fmt = cfg["student"], get_format(cfg["rationale"])
    datasets = list(hub_datasets) + ([dataset_id] if dataset_id else [])
    data = ModelCardData(
        library_name="transformers",
        pipeline_tag="text2text-generation" if student["arch"] == "seq2seq" else "text-generation",
        base_model=base_model(student),
        datasets=datasets or None,
        license=cfg.get("final", {}).get("license"),
        tags=["fdd", "feedback-driven-distillation", "math", f"rationale-{fmt.name}"],
    )
    origin = (
        base_model(student)
        or student.get("gguf_file")
        or student.get("pretrained")
        or f"random initialisation ({student.get('model_config', {}).get('model_type', 'unknown')} config)"
    )
    prompt = fmt.prompt_template
    body = f"""
# {student["name"]} distilled with FDD

A student model trained with Feedback-Driven Distillation ([arXiv 2411.14698](https://arxiv.org/abs/2411.14698))
by the `fdd` framework: {cfg["rounds"]} round(s), teacher `{cfg["teacher"].get("model") or cfg["teacher"]["backend"]}`,
augmentation `{cfg["augmentation"]["mode"]}`. Started from: {origin}.

This checkpoint is round **{chosen["round"]}** (selected: `{chosen["select"]}` by `{chosen["metric"]}` = {chosen["value"]:.3f}).

## Prompt format

The student was trained on exactly this prompt (`{{question}}` is the problem text); greedy decoding:

```text
{prompt}
```

## Rationale format: `{fmt.name}`

{RUN_PROGRAMS[fmt.name]}

```bash
fdd solve path/to/this/folder "Tom has 3 boxes of 12 apples. He eats 5. How many apples are left?"
```

```python
from transformers import AutoModelForCausalLM, AutoTokenizer
tok = AutoTokenizer.from_pretrained("path/to/this/folder")
model = AutoModelForCausalLM.from_pretrained("path/to/this/folder")
ids = tok({prompt.format(question="...")!r}, return_tensors="pt")
print(tok.decode(model.generate(**ids, max_new_tokens={student.get("generation", {}).get("max_new_tokens", 128)})[0][ids.input_ids.shape[1]:], skip_special_tokens=True))
```

## Held-out accuracy per round

{accuracy_table(rows, chosen["round"])}

## FDD config

```yaml
{yaml.safe_dump(_public(cfg), sort_keys=False).strip()}
```
"""
    return ModelCard(f"---\n{data.to_yaml()}\n---\n{body}").content


def dataset_card(cfg: Dict, n_rows: int, by_branch: Dict[str, int], model_id: Optional[str] = None) -> str:
    """The distillation set's README.md: lineage columns explained, one parquet split."""
    from huggingface_hub import DatasetCard, DatasetCardData

    data = DatasetCardData(
        license=cfg.get("final", {}).get("license"),
        task_categories=["text-generation"],
        tags=["fdd", "math", f"rationale-{cfg['rationale']}"],
        pretty_name="FDD distillation set",
        configs=[{"config_name": "default", "data_files": [{"split": "train", "path": "data/train-*.parquet"}]}],
    )
    branches = "\n".join(f"- `{b}`: {n}" for b, n in sorted(by_branch.items()))
    body = f"""
# FDD distillation set

The final distillation set of an `fdd` run ([arXiv 2411.14698](https://arxiv.org/abs/2411.14698)): {n_rows} verified
(problem, teacher rationale) pairs in the `{cfg["rationale"]}` format{f", used to train `{model_id}`" if model_id else ""}.

## Columns

- `id`, `question`, `answer` (a number), `source`, `rationale`;
- lineage: `parent_id` (the problem this one was written from, empty for seed problems), `round` (the round that
  added it, 0 = initialization) and `branch` (`seed`, `easy-harder`: a harder variation of a problem the student
  solved, `hard-similar`: a similar problem for one it failed).

## Rows per branch

{branches}

```python
import datasets
ds = datasets.load_dataset("parquet", data_files="data/train-*.parquet", split="train")
```
"""
    return DatasetCard(f"---\n{data.to_yaml()}\n---\n{body}").content


def _public(cfg: Dict) -> Dict:
    """The config without secrets or machine paths (what a card may show)."""
    out = {k: v for k, v in cfg.items() if k not in ("paths", "hydra")}
    teacher = dict(out.get("teacher", {}))
    teacher.pop("api_key", None)
    teacher.pop("prompts", None)
    out["teacher"] = teacher
    final = dict(out.get("final", {}))
    if "hub" in final:
        final["hub"] = {k: v for k, v in final["hub"].items() if k != "token"}
    out["final"] = final
    return out
