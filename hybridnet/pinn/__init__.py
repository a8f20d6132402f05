"""Physics-informed networks: domains, conditions, problems and derivative back ends.

A problem is composed from separate pieces, as in DeepXDE: a domain (:class:`Box`,
:class:`Interval`, :class:`Rectangle`, :class:`Disk`, :class:`Polygon`, their unions,
intersections and differences by ``|``, ``&``, ``-``, and :class:`SpaceTime`), conditions
(:class:`DirichletBC`, :class:`NeumannBC`, :class:`RobinBC`, :class:`PeriodicBC`,
:class:`InitialCondition`, :class:`TerminalCondition`, :class:`OperatorBC`), and a :class:`PDE`
with its residual, of one output or a system of several; :class:`~hybridnet.PINNSolver` trains a
network on it with a derivative back end of :mod:`hybridnet.pinn.derivatives` through the loss
of :mod:`hybridnet.pinn.loss`, optionally drawing its collocation points from the
residual-based distribution :class:`RAD`.
Built-in problems live in :mod:`hybridnet.pinn.problems`.
"""

from . import problems
from .conditions import (
    Condition,
    DirichletBC,
    InitialCondition,
    NeumannBC,
    OperatorBC,
    PeriodicBC,
    RobinBC,
    TerminalCondition,
    isclose,
)
from .derivatives import Derivatives
from .domain import Box
from .geometry import (
    CSGDifference,
    CSGIntersection,
    CSGUnion,
    Disk,
    Geometry,
    Interval,
    Polygon,
    Rectangle,
    SpaceTime,
)
from .problem import PDE
from .sampling import RAD
from .solver import PINNSolver

__all__ = ["PDE", "RAD", "Box", "CSGDifference", "CSGIntersection", "CSGUnion", "Condition",
           "Derivatives", "DirichletBC", "Disk", "Geometry", "InitialCondition", "Interval",
           "NeumannBC", "OperatorBC", "PINNSolver", "PeriodicBC", "Polygon", "Rectangle",
           "RobinBC", "SpaceTime", "TerminalCondition", "isclose", "problems"]
