"""The prefix-filtered near-duplicate index decides exactly as comparing with every known problem."""

from __future__ import annotations

import random

import pytest

from fdd.method.verify import DedupIndex, ngrams, words

VOCAB = "tom has apples and buys more pears than ann who sells each box for dollars at the shop".split()


def trigrams(text):
    """The definition: the set of word 3-grams (the text's words when it has fewer than 3)."""
    w = words(text)
    return set(ngrams(w, 3)) if len(w) >= 3 else {tuple(w)}


def brute_force(known, text, threshold):
    sh, key = trigrams(text), DedupIndex._key(text)
    for k in known:
        if DedupIndex._key(k) == key:
            other = trigrams(k)
            if len(sh & other) / len(sh | other) >= threshold:
                return True
    return False


def variant(rng, text):
    w = text.split()
    for _ in range(rng.choice([0, 0, 1, 2, 4])):
        i = rng.randrange(len(w))
        op = rng.random()
        if op < 0.4:
            w[i] = rng.choice(VOCAB)
        elif op < 0.7 and len(w) > 3:
            del w[i]
        else:
            w.insert(i, rng.choice(VOCAB))
    return " ".join(w)


@pytest.mark.parametrize("threshold", [0.5, 0.8, 0.9, 1.0])
def test_same_decisions_as_brute_force(threshold):
    rng = random.Random(threshold)
    bases = [
        " ".join(rng.choice(VOCAB) for _ in range(rng.randint(2, 30))) + f" {rng.randint(1, 3)} {rng.randint(1, 3)}"
        for _ in range(60)
    ]
    index, known, dup = DedupIndex(threshold), [], 0
    for _ in range(1500):
        text = variant(rng, rng.choice(bases + known[-50:]))
        expected = brute_force(known, text, threshold)
        assert index.is_duplicate(text) == expected, text
        if not expected:
            index.add(text)
            known.append(text)
        dup += expected
    assert 100 < dup < 1400  # both decisions are exercised


def test_numbers_must_match():
    index = DedupIndex(0.9)
    index.add("Tom has 3 apples and buys 4 more apples at the shop today")
    assert index.is_duplicate("Tom has 3 apples and buys 4 more apples at the shop today")
    assert not index.is_duplicate("Tom has 3 apples and buys 5 more apples at the shop today")
