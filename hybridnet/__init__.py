"""hybridnet: train neural networks that contain black-box physical layers.

The engine is a set of small torch modules usable without the estimators:
:class:`BlackBoxLayer` (a device inside a network, trained in situ), :class:`TTLinear`
(tensor-train compressed linear layer), the devices of :mod:`hybridnet.physical`, the
surrogate of :mod:`hybridnet.surrogate` and the estimators of :mod:`hybridnet.zeroth_order`.
"""

from . import physical
from .calibration import MeasurementLog, calibrate
from .estimators import HybridNetClassifier, HybridNetRegressor
from .layers import BlackBoxLayer, split_parameters
from .persistence import ModelFileError, load, save
from .pinn.solver import PINNSolver
from .surrogate import LowRankSurrogate
from .tt_linear import TTLinear

__version__ = "0.1.0"
__all__ = [
    "BlackBoxLayer", "HybridNetClassifier", "HybridNetRegressor", "LowRankSurrogate",
    "MeasurementLog", "ModelFileError", "PINNSolver", "TTLinear", "calibrate", "load",
    "physical", "save", "split_parameters",
]
