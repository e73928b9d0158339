"""Grading the student: its texts -> answers (the rationale format's extractor; programs run in
the sandbox) -> predictions checked against the gold answers. The student only writes texts."""

from __future__ import annotations

from typing import List, Sequence

from fdd.reasoning.answer import answers_match
from fdd.types import Prediction, Problem


def grade(problems: Sequence[Problem], texts: Sequence[str], fmt, sandbox) -> List[Prediction]:
    """One prediction per problem: ``texts[i]`` is the student's rationale for ``problems[i]``."""
    if not problems:
        return []
    results = fmt.extract(list(texts), sandbox)
    return [
        Prediction(
            id=p.id,
            output=t,
            predicted=r.value,
            gold=p.answer,
            correct=r.value is not None and p.answer is not None and answers_match(r.value, p.answer),
            error=r.error,
        )
        for p, t, r in zip(problems, texts, results)
    ]
