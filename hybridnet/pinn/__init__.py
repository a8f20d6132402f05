"""Physics-informed networks: domains, conditions, problems and derivative back ends.

A problem is composed from separate pieces, as in DeepXDE: a domain (:class:`Box`,
:class:`Interval`, :class:`Rectangle`, :class:`Disk`, :class:`Polygon`, their unions,
intersections and differences by ``|``, ``&``, ``-``, and :class:`SpaceTime`), conditions
(:class:`DirichletBC`, :class:`NeumannBC`, :class:`InitialCondition`,
:class:`TerminalCondition`), and a :class:`PDE` with its residual; :class:`~hybridnet.PINNSolver`
trains a network on it with a derivative back end of :mod:`hybridnet.pinn.derivatives`,
optionally drawing its collocation points from the residual-based distribution :class:`RAD`.
Built-in problems live in :mod:`hybridnet.pinn.problems`.
"""

from . import problems
from .conditions import (
    Condition,
    DirichletBC,
    InitialCondition,
    NeumannBC,
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
           "NeumannBC", "PINNSolver", "Polygon", "Rectangle", "SpaceTime", "TerminalCondition",
           "isclose", "problems"]
