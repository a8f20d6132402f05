"""A PDE problem: a domain, a residual, conditions and, when known, the exact solution."""

import math
import numbers

import numpy as np
import torch
from sklearn.utils import check_random_state

from .conditions import Condition
from .domain import Box
from .geometry import Geometry


class PDE:
    """A PDE problem to hand to :class:`~hybridnet.PINNSolver`.

    Parameters
    ----------
    domain : Geometry
        Where the PDE holds: a :class:`~hybridnet.pinn.Box`, any other geometry of
        ``hybridnet.pinn.geometry`` or a composition of them, or a
        :class:`~hybridnet.pinn.SpaceTime` for time-dependent problems.
    residual : callable
        ``residual(x, d) -> (n,)``, or a list of (n,) tensors for a system of equations (each
        is a term of the loss): x the points (n x D tensor), d a
        :class:`~hybridnet.pinn.derivatives.Derivatives` with ``d.u``, ``d.diff(i)``,
        ``d.grad(axes=None)``, ``d.diff2(i, j=None)`` (mixed when ``j`` is given),
        ``d.laplacian(axes=None)``, each with ``component=`` for a PDE of several outputs;
        axes run from 0 to D - 1 (an axis outside raises an ``IndexError`` that names it).
    conditions : sequence of Condition, default=()
        Boundary, initial and terminal conditions.
    solution : callable, optional
        The exact solution ``solution(x) -> (n,)``, or (n, k) for k outputs (tensor or array),
        for metrics.
    output_transform : callable, optional
        ``output_transform(x, network_output) -> u``, to impose hard constraints: the network's
        output and u are (n,) for one output, (n, k) for several.
    input_transform : callable, optional
        ``input_transform(x) -> features`` (n x F): what the network sees instead of x
        (periodic features ``cos x, sin x``, a rescaling). Derivatives stay with respect to x,
        through the transform, in every back end.
    n_outputs : int, default=1
        k, the components of u (a system: ``d.u`` is (n, k) and each condition says which
        ``component`` it constrains).
    parameters : dict of str to float, optional
        Unknown coefficients of the PDE with their initial values (inverse problems): the
        residual reads them as ``d.parameters["name"]`` (torch scalars) and
        :class:`~hybridnet.PINNSolver` trains them with the network, against the data term of
        ``fit(X, y)``; the fitted values are in ``solver.parameters_``.

    Attributes
    ----------
    builtin : tuple or None
        ``(name, arguments)`` of the :mod:`~hybridnet.pinn.problems` factory that made this
        problem, else None; :func:`hybridnet.save` stores such a problem by name. Change a
        built-in problem's pieces and you should set it to None.

    Examples
    --------
    >>> import math, torch
    >>> from hybridnet.pinn import PDE, Box, DirichletBC
    >>> poisson = PDE(Box([0, 0], [1, 1]),
    ...               lambda x, d: d.laplacian() + 2 * math.pi**2
    ...               * torch.sin(math.pi * x[:, 0]) * torch.sin(math.pi * x[:, 1]),
    ...               conditions=[DirichletBC(0.0)])
    >>> poisson.domain.dim
    2

    A system of two outputs, ``u' = v`` and ``v' = -u`` on ``[0, pi]`` (u = sin, v = cos),
    each equation a term of the loss:

    >>> from hybridnet.pinn import Interval
    >>> oscillator = PDE(Interval(0, math.pi),
    ...                  lambda x, d: [d.diff(0, component=0) - d.u[:, 1],
    ...                                d.diff(0, component=1) + d.u[:, 0]],
    ...                  [DirichletBC(0.0, where=lambda x: x[:, 0] == 0, component=0),
    ...                   DirichletBC(1.0, where=lambda x: x[:, 0] == 0, component=1)],
    ...                  n_outputs=2)
    >>> oscillator.n_outputs
    2

    An inverse problem: the diffusivity of a heat equation is unknown, 0.05 to start with.

    >>> heat = PDE(Box([0, 0], [1, 1], time_axis=1),
    ...            lambda x, d: d.diff(1) - d.parameters["diffusivity"] * d.diff2(0),
    ...            parameters={"diffusivity": 0.05})
    >>> heat.parameters
    {'diffusivity': 0.05}
    """

    def __init__(self, domain, residual, conditions=(), solution=None, output_transform=None,
                 parameters=None, *, input_transform=None, n_outputs=1):
        if not isinstance(domain, Geometry):
            raise TypeError(f"domain must be a hybridnet.pinn geometry (Box, Interval, Rectangle, "
                            f"Disk, Polygon, a composition of them, SpaceTime), got "
                            f"{type(domain).__name__}")
        if not callable(residual):
            raise TypeError(f"residual must be callable as residual(x, d), got "
                            f"{type(residual).__name__}")
        if isinstance(n_outputs, bool) or not isinstance(n_outputs, numbers.Integral) \
                or n_outputs < 1:
            raise ValueError(f"n_outputs must be an int >= 1, got {n_outputs!r}")
        conditions = tuple(conditions)
        for condition in conditions:
            if not isinstance(condition, Condition):
                raise TypeError(f"conditions must be Condition objects (DirichletBC, NeumannBC, "
                                f"RobinBC, PeriodicBC, InitialCondition, TerminalCondition, "
                                f"OperatorBC), got {type(condition).__name__}")
            condition.check_domain(domain)
            condition.check_outputs(int(n_outputs))
        for name, value in (("solution", solution), ("output_transform", output_transform),
                            ("input_transform", input_transform)):
            if value is not None and not callable(value):
                raise TypeError(f"{name} must be callable or None, got {type(value).__name__}")
        parameters = {} if parameters is None else parameters
        if not isinstance(parameters, dict):
            raise TypeError(f"parameters must be a dict of name -> initial value, got "
                            f"{type(parameters).__name__}")
        for name, value in parameters.items():
            if not (isinstance(name, str) and name.isidentifier()):
                raise ValueError(f"parameter names must be identifiers, got {name!r}")
            if isinstance(value, bool) or not isinstance(value, numbers.Real) \
                    or not math.isfinite(value):
                raise ValueError(f"parameter {name!r} needs a finite initial value, got "
                                 f"{value!r}")
        self.parameters = {name: float(value) for name, value in parameters.items()}
        self.domain = domain
        self.residual = residual
        self.conditions = conditions
        self.solution = solution
        self.output_transform = output_transform
        self.input_transform = input_transform
        self.n_outputs = int(n_outputs)
        # (factory name, arguments) when a built-in problem of hybridnet.pinn.problems made it.
        self.builtin = None

    def sample_solution(self, n, noise=0.0, random_state=None):
        """Measurements of the exact solution: ``n`` uniform points and noisy values there.

        For trying inverse and data-assisted problems: the values get Gaussian noise of
        ``noise`` times their root mean square.

        Parameters
        ----------
        n : int
            Number of points.
        noise : float, default=0.0
            Noise level relative to the values' RMS (0.01: 1 % noise).
        random_state : int, RandomState instance or None, default=None
            Draws the points and the noise.

        Returns
        -------
        X : ndarray of shape (n, D)
        y : ndarray of shape (n,), or (n, k) for k outputs (each component's noise scaled by
            its own RMS)

        Examples
        --------
        >>> from hybridnet.pinn import problems
        >>> X, y = problems.heat_1d().sample_solution(200, noise=0.01, random_state=0)
        >>> X.shape, y.shape
        ((200, 2), (200,))
        """
        if self.solution is None:
            raise ValueError("this PDE has no exact solution to sample: give "
                             "PDE(..., solution=...)")
        if not (isinstance(noise, numbers.Real) and noise >= 0 and math.isfinite(noise)):
            raise ValueError(f"noise must be a finite number >= 0, got {noise!r}")
        rng = check_random_state(random_state)
        if isinstance(self.domain, Box):
            unit = rng.random_sample((int(n), self.domain.dim))
            X = self.domain.lower + unit * (self.domain.upper - self.domain.lower)
        else:
            generator = torch.Generator().manual_seed(int(rng.randint(2**31 - 1)))
            X = self.domain.sample_interior(int(n), generator, torch.float64).numpy()
        exact = np.asarray(self.solution(torch.as_tensor(X)), dtype=np.float64)
        exact = exact.reshape(len(X), self.n_outputs)
        noisy = exact + noise * np.sqrt(np.mean(exact**2, axis=0)) * \
            rng.standard_normal(exact.shape)
        return X, noisy[:, 0] if self.n_outputs == 1 else noisy

    def __repr__(self):
        unknown = f", parameters={self.parameters!r}" if self.parameters else ""
        unknown += f", n_outputs={self.n_outputs}" if self.n_outputs > 1 else ""
        return (f"PDE({self.domain!r}, conditions={list(self.conditions)!r}, "
                f"solution={'known' if self.solution else 'unknown'}{unknown})")
