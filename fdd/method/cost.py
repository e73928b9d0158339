"""Teacher token and cost estimates for ``dry_run=true``, before anything is paid for.

Input tokens are counted from the real prompts (the teacher's templates filled with the seed
questions) at ~4 characters per token, the usual rule for English with BPE tokenizers; output
tokens from a typical reply length per job, capped by ``teacher.max_tokens`` (the upper bound is
reported too). How many calls each stage makes is the loop's own call plan (fdd.method.loop.CallPlan).
"""

from __future__ import annotations

from typing import Dict, Sequence

CHARS_PER_TOKEN = 4
# Typical reply lengths (tokens): a rationale (program or chain of thought), a new problem.
TYPICAL_OUTPUT = {"rationale": 150, "problem": 60}


def n_tokens(text: str) -> int:
    return max(1, round(len(text) / CHARS_PER_TOKEN))


def _prompts(teacher_cfg) -> Dict[str, str]:
    from fdd.teachers.llm import DEFAULT_PROMPTS

    # the simulator has none; price the real ones
    return dict(teacher_cfg.prompts or {}) or dict(DEFAULT_PROMPTS)


def _job(calls: int, prompt_tokens: float, output_per_call: int, max_tokens: int) -> Dict:
    return {
        "calls": calls,
        "input_tokens": round(prompt_tokens),
        "output_tokens": calls * min(output_per_call, max_tokens),
        "output_tokens_max": calls * max_tokens,
    }


def estimate_tokens(cfg, questions: Sequence[str], plan) -> Dict[str, Dict]:
    """Per stage: calls, input tokens, output tokens (typical and max). ``plan`` is the loop's
    CallPlan (fdd.method.loop.plan_calls): the call counts are the loop's, only tokens are added here."""
    t = cfg.teacher
    prompts = _prompts(t)
    system = n_tokens(prompts.get("system", "")) if prompts.get("system") else 0
    rationale_tmpl = prompts.get(f"rationale_{cfg.rationale}", "{question}")
    q_tokens = [n_tokens(q) for q in questions] or [0]
    mean_q = sum(q_tokens) / len(q_tokens)

    def prompt_cost(tmpl: str, n: int) -> float:
        return n * (system + n_tokens(tmpl.replace("{question}", "")) + mean_q)

    init_calls = plan.init_calls
    stages = {
        "init": _job(init_calls, prompt_cost(rationale_tmpl, init_calls), TYPICAL_OUTPUT["rationale"], t.max_tokens)
    }
    tmpl = prompts.get("harder", "{question}")
    for r in range(1, plan.augmenting_rounds + 1):
        new_calls, rat_calls = plan.problem_calls(r), plan.rationale_calls(r)
        if not new_calls:  # augmentation=none (or a zero budget) asks the teacher nothing after init
            continue
        stages[f"round_{r}_new_problems"] = _job(
            new_calls, prompt_cost(tmpl, new_calls), TYPICAL_OUTPUT["problem"], t.max_tokens
        )
        stages[f"round_{r}_rationales"] = _job(
            rat_calls, prompt_cost(rationale_tmpl, rat_calls), TYPICAL_OUTPUT["rationale"], t.max_tokens
        )
    return stages


def estimate_cost(cfg, questions: Sequence[str], plan) -> Dict:
    """Token estimates per stage, their totals and a cost from ``teacher.price`` (per million)."""
    stages = estimate_tokens(cfg, questions, plan)
    price = cfg.teacher.price
    total = {
        k: sum(s[k] for s in stages.values()) for k in ("calls", "input_tokens", "output_tokens", "output_tokens_max")
    }

    def cost(inp: int, out: int) -> float:
        return round((inp * price.input_per_mtok + out * price.output_per_mtok) / 1e6, 4)

    if not price.input_per_mtok and not price.output_per_mtok:  # 0.0 would read as "free"
        return {
            "stages": stages,
            "total": total,
            "cost": {
                "estimate": None,
                "max": None,
                "note": "prices unset: set teacher.price.input_per_mtok and teacher.price.output_per_mtok "
                "(per million tokens) for a cost estimate",
            },
        }
    return {
        "stages": stages,
        "total": total,
        "cost": {
            "input_per_mtok": price.input_per_mtok,
            "output_per_mtok": price.output_per_mtok,
            "estimate": cost(total["input_tokens"], total["output_tokens"]),
            "max": cost(total["input_tokens"], total["output_tokens_max"]),
        },
    }
