"""The text preference generator: the hidden rule, the length knob, label noise, soft labels, bad input."""

from __future__ import annotations

import math

import numpy as np
import pytest

from rmteach import text_preferences as tp


def _answer(response: str) -> int:
    return int(response.rstrip(tp.FILLER))


def _sum(prompt: str) -> int:
    a, b = prompt.rstrip("=").split("+")
    return int(a) + int(b)


def test_the_hidden_rule_holds_on_clean_labels():
    d = tp.make_text_preferences(3000, seed=3)
    assert len(d) == 3000 and d.label_noise_rate() == 0.0
    for prompt, chosen, rejected in zip(d.prompts, d.chosen, d.rejected):
        assert _answer(chosen) == _sum(prompt)
        off = _answer(rejected) - _sum(prompt)
        assert off != 0 and abs(off) <= tp.MAX_WRONG_OFFSET and _answer(rejected) >= 0
    a = [int(p.split("+")[0]) for p in d.prompts]
    assert min(a) == 0 and max(a) == 6  # the default operands (0, 6), inclusive
    assert np.all(d.soft_labels == 1.0)


def test_lengths_are_tokens_and_always_differ():
    d = tp.make_text_preferences(2000, response_lengths=(2, 6), seed=4)
    assert np.all(d.len_chosen == [len(s) for s in d.chosen])
    assert np.all(d.len_rejected == [len(s) for s in d.rejected])
    assert np.all(d.len_chosen != d.len_rejected)
    assert set(d.len_chosen.tolist()) | set(d.len_rejected.tolist()) == {2, 3, 4, 5, 6}
    assert all(set(s[len(str(_answer(s))):]) <= {tp.FILLER} for s in d.chosen + d.rejected)


@pytest.mark.parametrize("bias", [0.0, 0.5, 0.8, 1.0])
def test_length_bias_is_the_fraction_where_the_correct_answer_is_longer(bias):
    d = tp.make_text_preferences(20_000, length_bias=bias, seed=5)
    rate = d.longer_is_correct_rate()
    if bias in (0.0, 1.0):
        assert rate == bias
    else:  # binomial: 4 standard errors
        assert abs(rate - bias) < 4 * math.sqrt(bias * (1 - bias) / len(d))


@pytest.mark.parametrize("noise", [0.1, 0.27])
def test_label_noise_flips_that_fraction_of_single_annotator_labels(noise):
    d = tp.make_text_preferences(20_000, label_noise=noise, seed=6)
    assert abs(d.label_noise_rate() - noise) < 4 * math.sqrt(noise * (1 - noise) / len(d))
    flipped = ~d.chosen_is_correct  # a flipped pair's chosen response is the wrong answer
    assert all(_answer(c) != _sum(p) for c, p, f in zip(d.chosen, d.prompts, flipped) if f)
    assert list(d.correct[:50]) == [r if f else c for c, r, f in zip(d.chosen[:50], d.rejected[:50], flipped[:50])]
    # the truth's lengths do not move with the labels
    np.testing.assert_array_equal(d.len_correct, np.array([len(s) for s in d.correct]))


def test_soft_labels_are_vote_fractions_of_the_majority():
    d = tp.make_text_preferences(20_000, label_noise=0.2, n_annotators=5, seed=7)
    assert set(np.unique(d.soft_labels).tolist()) <= {0.6, 0.8, 1.0}
    # P(majority of 5 is wrong) = sum_{k>=3} C(5,k) 0.2^k 0.8^(5-k) = 0.05792
    wrong = sum(math.comb(5, k) * 0.2**k * 0.8 ** (5 - k) for k in (3, 4, 5))
    assert wrong == pytest.approx(0.05792, abs=1e-12)
    assert abs(d.label_noise_rate() - wrong) < 4 * math.sqrt(wrong * (1 - wrong) / len(d))
    # E[votes for the correct response] / 5 = 0.8
    frac_correct = np.where(d.chosen_is_correct, d.soft_labels, 1 - d.soft_labels)
    assert abs(frac_correct.mean() - 0.8) < 0.005


def test_same_seed_same_data_other_seed_other_data():
    kw = dict(length_bias=0.7, label_noise=0.1, n_annotators=3)
    a, b = tp.make_text_preferences(500, seed=11, **kw), tp.make_text_preferences(500, seed=11, **kw)
    c = tp.make_text_preferences(500, seed=12, **kw)
    assert a.prompts == b.prompts and a.chosen == b.chosen and a.rejected == b.rejected
    np.testing.assert_array_equal(a.soft_labels, b.soft_labels)
    assert a.chosen != c.chosen


def test_pinned_first_pairs():
    d = tp.make_text_preferences(3, seed=0)
    assert d.prompts == ("5+1=", "4+2=", "3+0=")
    assert d.chosen == ("6...", "6...", "3.....")
    assert d.rejected == ("3....", "8....", "6...")


def test_exclude_keeps_training_pairs_out_of_a_held_out_set():
    train = tp.make_text_preferences(4000, seed=0)
    val = tp.make_text_preferences(2000, seed=1, exclude=train)
    key = lambda d: set(zip(d.prompts, d.correct, d.wrong))
    assert len(val) == 2000 and not key(train) & key(val)
    assert key(train) & key(tp.make_text_preferences(2000, seed=1))  # without exclude: copies
    # the same seed and exclusion give the same pairs whatever the labels
    noisy = tp.make_text_preferences(2000, seed=1, exclude=train, label_noise=0.2)
    assert noisy.correct == val.correct and noisy.wrong == val.wrong
    with pytest.raises(ValueError, match=r"exclude leaves too few new pairs"):
        tp.make_text_preferences(10, operands=(0, 0), response_lengths=(1, 2),
                                 exclude=tp.make_text_preferences(200, operands=(0, 0), response_lengths=(1, 2)))


def test_out_of_range_operands():
    d = tp.make_text_preferences(1000, operands=(10, 19), seed=8)
    assert all(10 <= int(x) <= 19 for p in d.prompts for x in p.rstrip("=").split("+"))
    assert all(_answer(c) == _sum(p) for c, p in zip(d.chosen, d.prompts))


def test_tokenizer_round_trip_and_padding():
    assert tp.encode("3+4=7.") == [4, 11, 5, 12, 8, 13]
    assert tp.decode(tp.encode("12+9=21..")) == "12+9=21.."
    ids, lengths = tp.encode_batch(["3+4=", "12+9="], ["7", "21.."])
    assert ids.dtype == np.int64 and ids.shape == (2, 9) and lengths.tolist() == [5, 9]
    assert ids[0, 5:].tolist() == [tp.PAD] * 4
    assert tp.decode(ids[0]) == "3+4=7" and tp.decode(ids[1]) == "12+9=21.."


@pytest.mark.parametrize("kwargs, exc, match", [
    ({"n_pairs": 0}, ValueError, r"n_pairs must be an integer >= 1, got 0"),
    ({"n_pairs": 2.5}, TypeError, r"n_pairs must be an integer"),
    ({"length_bias": 1.2}, ValueError, r"length_bias must be in \[0, 1\], got 1.2"),
    ({"length_bias": float("nan")}, ValueError, r"length_bias must be in \[0, 1\]"),
    ({"label_noise": 0.6}, ValueError, r"label_noise must be in \[0, 0.5\], got 0.6"),
    ({"label_noise": "0.1"}, TypeError, r"label_noise must be a real number"),
    ({"n_annotators": 4}, ValueError, r"n_annotators must be odd"),
    ({"n_annotators": 0}, ValueError, r"n_annotators must be an integer >= 1"),
    ({"operands": (5, 2)}, ValueError, r"operands must have lo <= hi"),
    ({"operands": (-1, 2)}, ValueError, r"operands\[0\] must be an integer >= 0"),
    ({"operands": 9}, TypeError, r"operands must be a pair"),
    ({"operands": (0, 60)}, ValueError, r"response_lengths\[0\] must be >= 3"),
    ({"response_lengths": (3, 3)}, ValueError, r"response_lengths must span at least two lengths"),
    ({"seed": -1}, ValueError, r"seed must be an integer >= 0"),
    ({"exclude": [("1+1=", "2", "3")]}, TypeError, r"exclude must be a TextPreferences or None"),
])
def test_bad_input_names_the_argument(kwargs, exc, match):
    args = {"n_pairs": 10, **kwargs}
    n = args.pop("n_pairs")
    with pytest.raises(exc, match=match):
        tp.make_text_preferences(n, **args)


@pytest.mark.parametrize("call, exc, match", [
    (lambda: tp.encode("3*4="), ValueError, r"text may hold only"),
    (lambda: tp.encode(34), TypeError, r"text must be a str"),
    (lambda: tp.decode([1, 99]), ValueError, r"ids must be token ids in \[0, 13\], got 99"),
    (lambda: tp.encode_batch(["1+1="], ["2", "3"]), ValueError, r"same length, got 1 and 2"),
    (lambda: tp.encode_batch("1+1=", "2"), TypeError, r"not a single string"),
])
def test_bad_tokenizer_input(call, exc, match):
    with pytest.raises(exc, match=match):
        call()
