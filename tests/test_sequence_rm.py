"""The sequence reward model: reads the last real token, trains on CPU in seconds, its ensemble flags
unfamiliar prompts, and bad input names the argument."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from rmteach import text_preferences as tp
from rmteach.sequence_rm import (
    SequenceRewardModel,
    ensemble_margins,
    ensemble_scores,
    preference_probabilities,
    score_pairs,
    score_texts,
    train_ensemble,
    train_sequence_rm,
)

SMALL = dict(steps=150, batch_size=128, lr=1e-2, warmup=20)


@pytest.fixture(scope="module")
def clean():
    train = tp.make_text_preferences(3000, seed=0)
    return train, tp.make_text_preferences(1000, seed=1, exclude=train)


@pytest.fixture(scope="module")
def ensemble(clean):
    train, _ = clean
    return train_ensemble(train, n_models=3, **SMALL)


def _scores(model, ids, lengths):
    with torch.no_grad():
        return model(torch.as_tensor(ids), torch.as_tensor(lengths)).numpy()


def test_padding_does_not_change_the_score():
    model = SequenceRewardModel(seed=3).eval()
    ids, lengths = tp.encode_batch(["3+4=", "12+9=", "0+0="], ["7..", "21", "0....."])
    base = _scores(model, ids, lengths)
    more_pad = np.pad(ids, ((0, 0), (0, 4)), constant_values=tp.PAD)
    np.testing.assert_allclose(_scores(model, more_pad, lengths), base, rtol=0, atol=1e-6)
    # whatever sits past a sequence's length is never seen: attention is masked there
    garbage = more_pad.copy()
    for i, n in enumerate(lengths):
        garbage[i, n:] = np.arange(1, 1 + garbage.shape[1] - n) % 13 + 1
    np.testing.assert_allclose(_scores(model, garbage, lengths), base, rtol=0, atol=1e-6)
    # one sequence alone (no padding at all) scores as it does in the padded batch
    alone = _scores(model, ids[1:2, : lengths[1]], lengths[1:2])
    np.testing.assert_allclose(alone, base[1:2], rtol=0, atol=1e-6)


def test_the_score_is_read_at_the_last_real_token():
    model = SequenceRewardModel(seed=4).eval()
    ids, lengths = tp.encode_batch(["3+4=", "3+4="], ["7.", "7."])
    read_early = _scores(model, ids, lengths - 1)  # reading one token earlier is a different score
    assert not np.allclose(read_early, _scores(model, ids, lengths))
    changed = ids.copy()
    changed[1, lengths[1] - 1] = tp.encode("9")[0]  # change the last real token of the second
    s = _scores(model, changed, lengths)
    assert s[0] == pytest.approx(_scores(model, ids, lengths)[0], abs=1e-6) and abs(s[1] - s[0]) > 1e-4


def test_trains_to_high_held_out_accuracy_on_clean_data(ensemble, clean):
    _, val = clean
    rc, rr = score_pairs(ensemble[0], val)
    assert np.mean(rc > rr) > 0.9


def test_training_is_seeded():
    data = tp.make_text_preferences(300, seed=5)
    runs = []
    for _ in range(2):
        model = SequenceRewardModel(seed=7)
        history = train_sequence_rm(model, data, steps=15, batch_size=32, seed=7, eval_every=5, val=data)
        runs.append((score_texts(model, data.prompts[:20], data.chosen[:20]), history.train_loss))
    np.testing.assert_array_equal(runs[0][0], runs[1][0])
    assert runs[0][1] == runs[1][1] and len(runs[0][1]) == 3
    other = SequenceRewardModel(seed=8)
    train_sequence_rm(other, data, steps=15, batch_size=32, seed=8)
    assert not np.array_equal(score_texts(other, data.prompts[:20], data.chosen[:20]), runs[0][0])


def test_training_restores_the_thread_count_and_calls_back():
    data = tp.make_text_preferences(100, seed=6)
    before = torch.get_num_threads()
    seen = []
    train_sequence_rm(SequenceRewardModel(n_layers=1), data, steps=6, batch_size=8, eval_every=3,
                      val=data, callback=lambda step, **m: seen.append((step, sorted(m))))
    assert torch.get_num_threads() == before
    assert seen == [(3, ["train_loss", "val_acc"]), (6, ["train_loss", "val_acc"])]


def test_the_ensemble_disagrees_more_on_out_of_range_prompts(ensemble):
    in_range = tp.make_text_preferences(500, seed=21)
    out_of_range = tp.make_text_preferences(500, operands=(10, 19), seed=21)

    def split_votes(data):  # fraction of pairs on which the members do not all pick the same response
        s = np.sign(ensemble_margins(ensemble, data))
        return np.mean(~np.all(s == s[0], axis=0))

    assert split_votes(out_of_range) > split_votes(in_range) + 0.3
    scores = ensemble_scores(ensemble, in_range.prompts, in_range.chosen)
    assert scores.shape == (3, 500) and scores.dtype == np.float64
    margins = ensemble_margins(ensemble, in_range)
    np.testing.assert_allclose(margins[1], scores[1] - score_texts(ensemble[1], in_range.prompts, in_range.rejected))


def test_preference_probabilities_put_pairs_in_a_random_order(ensemble, clean):
    _, val = clean
    p, y = preference_probabilities(ensemble[0], val, seed=0)
    assert p.shape == y.shape == (len(val),) and set(np.unique(y)) == {0.0, 1.0}
    assert 0.4 < y.mean() < 0.6
    rc, rr = score_pairs(ensemble[0], val)
    # where y_a is the chosen response p = sigma(r_c - r_r), else sigma(r_r - r_c)
    want = np.where(y == 1, 1 / (1 + np.exp(-(rc - rr))), 1 / (1 + np.exp(-(rr - rc))))
    np.testing.assert_allclose(p, want, rtol=1e-12)
    np.testing.assert_array_equal(preference_probabilities(ensemble[0], val, seed=0)[1], y)


@pytest.mark.parametrize("kwargs, exc, match", [
    ({"d_model": 30, "n_heads": 4}, ValueError, r"d_model must be a multiple of n_heads"),
    ({"n_layers": 0}, ValueError, r"n_layers must be an integer >= 1"),
    ({"d_model": 32.0}, TypeError, r"d_model must be an integer"),
])
def test_bad_model_arguments(kwargs, exc, match):
    with pytest.raises(exc, match=match):
        SequenceRewardModel(**kwargs)


def test_bad_forward_and_training_arguments():
    model = SequenceRewardModel(max_len=8)
    data = tp.make_text_preferences(10, seed=0)
    ids, lengths = tp.encode_batch(["3+4="], ["7"])
    with pytest.raises(ValueError, match=r"lengths must have shape \(1,\) with values in \[1, 5\]"):
        model(torch.as_tensor(ids), torch.tensor([6]))
    with pytest.raises(ValueError, match=r"ids must have shape \(B, T\)"):
        model(torch.as_tensor(ids[0]), torch.tensor([5]))
    with pytest.raises(ValueError, match=r"max_len=8"):
        score_texts(model, ["12+19="], ["31...."])
    with pytest.raises(ValueError, match=r"steps must be an integer >= 1"):
        train_sequence_rm(model, data, steps=0)
    with pytest.raises(ValueError, match=r"lr must be a finite number > 0"):
        train_sequence_rm(model, data, lr=-1.0)
    with pytest.raises(TypeError, match=r"data must be a TextPreferences"):
        train_sequence_rm(model, [("3+4=", "7", "8")])
    with pytest.raises(TypeError, match=r"soft must be True or False"):
        train_sequence_rm(model, data, soft=1)
    with pytest.raises(TypeError, match=r"model must be a SequenceRewardModel"):
        score_pairs(torch.nn.Linear(2, 1), data)
    with pytest.raises(ValueError, match=r"seed is set per member"):
        train_ensemble(data, 2, seed=3)
