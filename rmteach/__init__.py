"""rmteach: how a reward model learns from human preferences.

Reference implementations of the Bradley–Terry preference probability
sigma(r_a - r_b) and the pair-wise ranking loss -log sigma(r_pref - r_rej) used
in RLHF, with the same API in two frameworks::

    from rmteach import numpy as rm   # NumPy: analytic gradients, no torch needed
    from rmteach import torch as rm   # PyTorch: autograd, trains models

``import rmteach`` and ``import rmteach.numpy`` never import torch.

The package is laid out by who reads it:

* the reference math: :mod:`rmteach.numpy`, :mod:`rmteach.torch`,
  :mod:`rmteach.evaluation`, :mod:`rmteach.gradcheck` and, as labelled bad
  examples, :mod:`rmteach.naive`;
* the explorers the notebooks import: :mod:`rmteach.widgets`, one module per
  explorer;
* the course simulations: :mod:`rmteach.training` and :mod:`rmteach.rlhf`;
* grading the nbgrader course: :mod:`rmteach.grading`, one job per module (a
  test cell's ``from rmteach import grading as _g`` gets only the checks).
"""

__version__ = "0.1.0"
