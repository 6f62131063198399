"""Hypothesis strategies shared by the property tests (one place, as minitorch does)."""

from __future__ import annotations

import numpy as np
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

# Rewards a reward model plausibly produces, and a wider range for stability checks.
rewards = st.floats(min_value=-50.0, max_value=50.0, allow_nan=False, allow_infinity=False)
wide_rewards = st.floats(min_value=-1e4, max_value=1e4, allow_nan=False, allow_infinity=False)
shifts = st.floats(min_value=-100.0, max_value=100.0, allow_nan=False, allow_infinity=False)

# Dyadic rationals k / 2**10 with |k| < 2**20: sums and differences of a few of them
# are exact in float64, so invariance to a common shift can be asserted with ==.
dyadic = st.integers(min_value=-(2**20), max_value=2**20).map(lambda k: k / 1024.0)

batch_sizes = st.integers(min_value=1, max_value=16)


@st.composite
def reward_pairs(draw, elements=rewards, min_size: int = 1, max_size: int = 16):
    """Two float64 arrays of the same shape (B,): rewards of preferred and rejected responses."""
    n = draw(st.integers(min_value=min_size, max_value=max_size))
    a = draw(hnp.arrays(np.float64, n, elements=elements))
    b = draw(hnp.arrays(np.float64, n, elements=elements))
    return a, b


@st.composite
def ranked_lists(draw, min_n: int = 2, max_n: int = 8):
    """One prompt's rewards for N ranked responses, shape (N,)."""
    n = draw(st.integers(min_value=min_n, max_value=max_n))
    return draw(hnp.arrays(np.float64, n, elements=rewards))


@st.composite
def positive_weights(draw, n: int):
    """Per-pair weights >= 0 with at least one positive."""
    w = draw(hnp.arrays(np.float64, n, elements=st.floats(min_value=0.0, max_value=10.0)))
    if not np.any(w > 0):
        w[draw(st.integers(0, n - 1))] = 1.0
    return w


# ---------------------------------------------------------------- DPO, PPO and evaluation

# Sequence log-probabilities (sums over tokens, so <= 0 and possibly large), and dyadic
# ones k / 2**10 whose sums and differences are exact in float64 (exact invariances).
logps = st.floats(min_value=-500.0, max_value=0.0, allow_nan=False, allow_infinity=False)
dyadic_logps = st.integers(min_value=-(2**19), max_value=0).map(lambda k: k / 1024.0)
# DPO's beta: any positive strength, and powers of two (multiplying by them is exact).
betas = st.floats(min_value=1e-3, max_value=10.0, allow_nan=False, allow_infinity=False)
dyadic_betas = st.integers(min_value=-6, max_value=3).map(lambda k: 2.0**k)


@st.composite
def dpo_batches(draw, elements=logps, min_size: int = 1, max_size: int = 16):
    """Four float64 arrays of one shape (B,): policy chosen/rejected, reference chosen/rejected logps."""
    n = draw(st.integers(min_value=min_size, max_value=max_size))
    return tuple(draw(hnp.arrays(np.float64, n, elements=elements)) for _ in range(4))


# PPO: probability ratios pi_new / pi_old (> 0) and advantages.
ratios = st.floats(min_value=1e-3, max_value=10.0, allow_nan=False, allow_infinity=False)
advantages = st.floats(min_value=-10.0, max_value=10.0, allow_nan=False, allow_infinity=False)
clip_eps = st.floats(min_value=0.01, max_value=0.9, allow_nan=False, allow_infinity=False)

# Evaluation: predicted preference probabilities and 0/1 labels.
probabilities = st.floats(min_value=0.0, max_value=1.0, allow_nan=False, allow_infinity=False)


@st.composite
def labelled_probs(draw, min_size: int = 1, max_size: int = 50):
    """Predicted P(y_a > y_b) in [0, 1], shape (N,), and 0/1 labels of the same shape."""
    n = draw(st.integers(min_value=min_size, max_value=max_size))
    p = draw(hnp.arrays(np.float64, n, elements=probabilities))
    y = draw(hnp.arrays(np.int64, n, elements=st.integers(0, 1)))
    return p, y
