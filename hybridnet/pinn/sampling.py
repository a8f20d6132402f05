"""Residual-based adaptive sampling of collocation points (RAD, Wu et al. 2023)."""

import math
import numbers


class RAD:
    """Residual-based adaptive distribution of the collocation points.

    Every ``every`` steps the solver evaluates the PDE residual r of the current network at
    ``n_candidates`` fresh uniform points (or at the rows of ``X`` when ``fit(X)`` supplies the
    collocation pool) and, until the next refresh, draws each step's collocation points from
    those candidates with probability::

        p(x) ~ |r(x)|^k / mean(|r|^k) + c

    (Wu, Zhu, Tan, Kartha and Lu, "A comprehensive study of non-adaptive and residual-based
    adaptive sampling for physics-informed neural networks", CMAME 2023). k sharpens the
    density towards large residuals (a shock, a boundary layer); c keeps a uniform share, so
    no region is abandoned. The first ``every`` steps are uniform, so the first residuals come
    from a network that has learned something. Network evaluations of a refresh are counted
    in ``n_network_evaluations_``.

    Parameters
    ----------
    k : float, default=1.0
        Exponent of the residual (0: uniform).
    c : float, default=1.0
        Uniform share (relative to the mean of ``|r|^k``); larger is closer to uniform.
    every : int, default=100
        Steps between refreshes of the distribution.
    n_candidates : int, optional
        Candidate points per refresh; default ten times ``n_collocation``.

    Examples
    --------
    >>> import torch
    >>> from hybridnet.pinn.sampling import RAD
    >>> RAD(k=1, c=0).probabilities(torch.tensor([1.0, 3.0, 0.0]))
    tensor([0.2500, 0.7500, 0.0000])
    """

    def __init__(self, k=1.0, c=1.0, every=100, n_candidates=None):
        for name, value, low in (("k", k, 0), ("c", c, 0)):
            if not (isinstance(value, numbers.Real) and math.isfinite(value) and value >= low):
                raise ValueError(f"RAD {name} must be a finite number >= {low}, got {value!r}")
        if not (isinstance(every, numbers.Integral) and every >= 1):
            raise ValueError(f"RAD every must be an int >= 1, got {every!r}")
        if n_candidates is not None and not (isinstance(n_candidates, numbers.Integral)
                                             and n_candidates >= 1):
            raise ValueError(f"RAD n_candidates must be None or an int >= 1, got "
                             f"{n_candidates!r}")
        if k == 0 and c == 0:
            raise ValueError("RAD with k=0 and c=0 gives every point probability 0/0; "
                             "use c > 0")
        self.k = float(k)
        self.c = float(c)
        self.every = int(every)
        self.n_candidates = n_candidates

    def candidates(self, n_collocation):
        """The number of candidate points of a refresh for ``n_collocation`` per step."""
        return 10 * n_collocation if self.n_candidates is None else int(self.n_candidates)

    def probabilities(self, residuals):
        """Sampling probabilities (summing to 1) of the candidates from their residuals.

        Parameters
        ----------
        residuals : torch.Tensor
            The PDE residual at each candidate, shape (n,).

        Returns
        -------
        torch.Tensor
            Shape (n,).
        """
        density = residuals.detach().abs().double() ** self.k
        mean = density.mean()
        # A residual that vanishes everywhere leaves nothing to adapt to: uniform.
        density = density / mean + self.c if mean > 0 else density.new_ones(len(density))
        return (density / density.sum()).to(residuals.dtype)

    def __repr__(self):
        return (f"RAD(k={self.k:g}, c={self.c:g}, every={self.every}, "
                f"n_candidates={self.n_candidates!r})")
