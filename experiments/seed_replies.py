"""Replay a run's seed rationales from the teacher cache and read them with today's readers.

    python experiments/seed_replies.py outputs/real_teacher/after/run            # a table per problem
    python experiments/seed_replies.py RUN --jsonl replies.jsonl                # + every reply, for a hand check
    python experiments/seed_replies.py RUN --rationale cot                      # the same problems in CoT

The run's own config chooses the problems and the teacher; the cache is opened read-only, so
nothing is asked of a server unless ``--ask`` is given (then missing replies are requested). One
line per problem: kept or why not, the answer, the gold answer and the convention that read it;
then the counts. Two readers compared on the same replies (``git stash`` the change) give the
"before and after" of a reader change without the teacher's sampling noise.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from pathlib import Path

from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from fdd.config import register_configs, validate
from fdd.data import load_problems
from fdd.method.verify import verify_seed
from fdd.reasoning.answer import answers_match
from fdd.reasoning.formats import get_format
from fdd.sandbox import Sandbox
from fdd.teachers import build_teacher

REPO = Path(__file__).resolve().parents[1]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("run_dir", type=Path)
    ap.add_argument("--rationale", choices=("pot", "cot"), default=None, help="default: the run's format")
    ap.add_argument("--samples", type=int, default=None, help="default: augmentation.seed_samples")
    ap.add_argument("--ask", action="store_true", help="request replies missing from the cache")
    ap.add_argument("--jsonl", type=Path, default=None, help="write every reply with its reading here")
    args = ap.parse_args(argv)

    # The run's config, composed again from its own overrides (the stored config.yaml holds
    # Hydra's resolved paths but not the schema types).
    register_configs()
    overrides = [o for o in OmegaConf.load(args.run_dir / ".hydra" / "overrides.yaml") if not o.startswith("hydra.")]
    overrides.append(f"teacher.cache={'on' if args.ask else 'readonly'}")
    with initialize_config_dir(str(REPO / "fdd" / "conf"), version_base=None):
        cfg = compose("config", overrides=overrides)
    OmegaConf.update(cfg, "paths.output_dir", str(args.run_dir))
    OmegaConf.update(cfg, "paths.cache_dir", str(REPO / ".cache" / "fdd"))
    obj = validate(cfg)
    fmt_name = args.rationale or obj.rationale
    k = args.samples or obj.augmentation.seed_samples
    train, _ = load_problems(obj)
    fmt = get_format(fmt_name)
    with (
        Sandbox(workers=1) as sandbox,
        build_teacher(obj.teacher, cache_dir=obj.teacher.cache_dir or obj.paths.cache_dir, seed=obj.seed) as teacher,
    ):
        replies = teacher.write_rationales(train, k, fmt_name)
        answers = fmt.extract_replies(replies, sandbox)
    items, _rejected = verify_seed(train, replies, answers, max_keep=k)
    kept = {it.problem_id for it in items}
    verdicts, conventions = Counter(), Counter()
    out = []
    for p, reps, ans in zip(train, replies, answers):
        for j, (rep, res) in enumerate(zip(reps, ans)):
            if not rep.ok:
                verdict = rep.error
            elif res.error:
                verdict = f"rationale_{res.error}"
            else:
                verdict = "right" if answers_match(res.value, p.answer) else "wrong_answer"
                conventions[res.convention] += 1
            verdicts[verdict] += 1
            print(
                f"{p.id[:14]:14} #{j} {verdict:22} value={getattr(res, 'value', None)!s:>10} gold={p.answer:>8g} "
                f"{getattr(res, 'convention', None) or '':13} {(getattr(res, 'detail', None) or '')[:50]}"
            )
            out.append(
                {
                    "id": p.id,
                    "sample": j,
                    "question": p.question,
                    "gold": p.answer,
                    "format": fmt_name,
                    "reply": rep.text,
                    "target": getattr(res, "text", None),
                    "value": getattr(res, "value", None),
                    "convention": getattr(res, "convention", None),
                    "error": getattr(res, "error", None) if rep.ok else rep.error,
                    "verdict": verdict,
                }
            )
    print(f"\n{len(kept)}/{len(train)} problems kept; replies: {dict(verdicts)}; conventions: {dict(conventions)}")
    if args.jsonl:
        args.jsonl.write_text("".join(json.dumps(r) + "\n" for r in out), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
