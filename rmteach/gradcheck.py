"""Gradient checking by central differences (NumPy only).

The tests check every analytic gradient in :mod:`rmteach.numpy` with these,
and students can check their own::

    from rmteach.gradcheck import check_gradient
    check_gradient(lambda a, b: my_loss(a, b), my_grad, {"r_pref": a, "r_rej": b})

A failure names the argument and the index where the gradients disagree.
"""

from __future__ import annotations

from typing import Callable, Mapping, Sequence

import numpy as np


def central_difference(
    f: Callable[..., float], args: Mapping[str, np.ndarray], name: str, eps: float = 1e-6
) -> np.ndarray:
    r"""Numerical gradient of the scalar ``f(**args)`` with respect to ``args[name]``.

    .. math:: \frac{\partial f}{\partial x_i} \approx \frac{f(x + \varepsilon e_i) - f(x - \varepsilon e_i)}{2\varepsilon}

    Error :math:`O(\varepsilon^2)`; computed in float64 whatever the inputs.
    Shapes: the result has the shape of ``args[name]``.
    """
    if name not in args:
        raise ValueError(f"name must be one of the arguments {sorted(args)}, got {name!r}")
    base = {k: np.array(v, dtype=np.float64) for k, v in args.items()}
    x = base[name]
    grad = np.zeros_like(x)
    flat, gflat = x.reshape(-1), grad.reshape(-1)
    for i in range(flat.size):
        old = flat[i]
        flat[i] = old + eps
        up = float(f(**base))
        flat[i] = old - eps
        down = float(f(**base))
        flat[i] = old
        gflat[i] = (up - down) / (2 * eps)
    return grad


def check_gradient(
    f: Callable[..., float],
    grad: Callable[..., Sequence[np.ndarray]],
    args: Mapping[str, np.ndarray],
    wrt: Sequence[str] | None = None,
    eps: float = 1e-6,
    rtol: float = 1e-6,
    atol: float = 1e-8,
) -> None:
    """Assert that ``grad(**args)`` matches central differences of ``f(**args)``.

    ``grad`` returns one array per name in ``wrt`` (default: every argument, in
    order).  Raises ``AssertionError`` naming the argument, the index, and both
    values at the worst disagreement.
    """
    names = list(args) if wrt is None else list(wrt)
    analytic = grad(**args)
    if len(analytic) != len(names):
        raise ValueError(f"grad returned {len(analytic)} arrays for the {len(names)} arguments {names}")
    for name, g in zip(names, analytic):
        g = np.asarray(g, dtype=np.float64)
        numeric = central_difference(f, args, name, eps)
        if g.shape != numeric.shape:
            raise AssertionError(f"d/d{name}: analytic shape {g.shape} != argument shape {numeric.shape}")
        err = np.abs(g - numeric) - (atol + rtol * np.abs(numeric))
        if np.any(err > 0) or not np.all(np.isfinite(g)):
            i = np.unravel_index(np.argmax(np.where(np.isfinite(g), err, np.inf)), g.shape)
            where = "[" + ", ".join(str(int(k)) for k in i) + "]" if g.ndim else ""
            raise AssertionError(
                f"d/d{name}{where}: analytic {float(g[i])!r} vs central difference "
                f"{float(numeric[i])!r} (eps={eps}, rtol={rtol}, atol={atol})"
            )
