"""Physical layers: simulated photonic devices and a wrapper for any queryable device.

Every black box takes a batch of inputs (batch x in_features) and a flat parameter vector and
returns (batch x out_features); see :class:`BlackBox` for the interface and its counters.
"""

from .base import BlackBox, BlackBoxError, DeviceTimeoutError
from .faulty import FaultyBlackBox, TransientDeviceError
from .function import FunctionBlackBox
from .mrr import MRRBank
from .mzi import MZIMesh
from .photonic import PhotonicDevice
from .slm import SLM
from .usv import USVMesh

__all__ = ["SLM", "BlackBox", "BlackBoxError", "DeviceTimeoutError", "FaultyBlackBox",
           "FunctionBlackBox", "MRRBank", "MZIMesh", "PhotonicDevice", "TransientDeviceError",
           "USVMesh"]
