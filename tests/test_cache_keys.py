"""The teacher cache's key: what makes two requests the same entry, and what keeps them apart."""

from __future__ import annotations

from fdd.config import TeacherConfig
from fdd.teachers.cache import cache_key
from fdd.teachers.llm import Completion, LLMTeacher


class Echo(LLMTeacher):
    backend = "echo"

    def _generate(self, requests, on_complete=None):
        return [Completion("x") for _ in requests]


def teacher(model="m1", request_seeds=True):
    cfg = TeacherConfig(backend="openai", model=model, cache="off", temperature=0.7, top_p=0.95, max_tokens=64)
    t = Echo(cfg)
    t.request_seeds = request_seeds
    return t


def key(t, question="Q?", sample_index=0):
    return t.request_key(t.make_request("rationale", question, "{question}", sample_index, "pot"))


def test_equal_requests_share_a_key_and_dict_order_does_not_matter():
    assert key(teacher()) == key(teacher())
    assert cache_key({"a": 1, "b": [1, 2]}) == cache_key({"b": [1, 2], "a": 1})


def test_model_sample_and_question_keep_entries_apart():
    assert key(teacher("m1")) != key(teacher("m2"))  # two models never share an entry
    for seeds in (True, False):  # the k samples of one prompt are k entries, with or without request seeds
        t = teacher(request_seeds=seeds)
        assert len({key(t, sample_index=i) for i in range(3)}) == 3
    assert key(teacher(), question="Q1?") != key(teacher(), question="Q2?")


def test_sampling_settings_are_part_of_the_key():
    a, b = teacher(), teacher()
    b.cfg.temperature = 0.2
    assert key(a) != key(b)
