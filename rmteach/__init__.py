"""rmteach: how a reward model learns from human preferences.

Reference implementations of the Bradley–Terry preference probability
sigma(r_a - r_b) and the pair-wise ranking loss -log sigma(r_pref - r_rej) used
in RLHF, with the same API in two frameworks::

    from rmteach import numpy as rm   # NumPy: analytic gradients, no torch needed
    from rmteach import torch as rm   # PyTorch: autograd, trains models

``import rmteach`` and ``import rmteach.numpy`` never import torch.
"""

__version__ = "0.1.0"
