"""Build the multilayer perceptrons the estimators train, with physical and TT layers in place.

The network is ``Linear -> act -> ... -> Linear``; each linear map is a plain ``nn.Linear``, a
:class:`~hybridnet.TTLinear` (when ``tt_rank`` is set) or a :class:`~hybridnet.BlackBoxLayer`
over a device (at the positions named by ``physical_positions``). A plain PyTorch user can call
:func:`build_mlp` directly.
"""

import copy
import numbers

import numpy as np
import torch
from torch import nn

from ._random import spawn_seeds
from .layers import BlackBoxLayer
from .physical import SLM, BlackBox, MRRBank, MZIMesh, USVMesh
from .tt_linear import TTLinear

DEVICES = {"mzi": MZIMesh, "mrr": MRRBank, "slm": SLM, "usv": USVMesh}


class Sine(nn.Module):
    """``sin(x)``, the activation of sinusoidal PINNs.

    Examples
    --------
    >>> import math
    >>> import torch
    >>> from hybridnet.network import Sine, build_mlp
    >>> Sine()(torch.tensor([0.0, math.pi / 2])).tolist()
    [0.0, 1.0]
    >>> build_mlp(2, 1, (8,), activation="sin")  # what activation="sin" puts in a network
    Sequential(
      (0): Linear(in_features=2, out_features=8, bias=True)
      (1): Sine()
      (2): Linear(in_features=8, out_features=1, bias=True)
    )
    """

    def forward(self, x):
        return torch.sin(x)


ACTIVATIONS = {"relu": nn.ReLU, "tanh": nn.Tanh, "logistic": nn.Sigmoid,
               "identity": nn.Identity, "sin": Sine}
INITIALIZERS = ("torch", "glorot_normal", "glorot_uniform")


def initialize_linear_layers(module, initializer):
    """Re-initialise every ``nn.Linear`` inside ``module`` in place; returns ``module``.

    "torch" leaves PyTorch's own initialisation (weights and biases uniform within
    ``1 / sqrt(fan_in)``); "glorot_normal" and "glorot_uniform" draw the weights from Glorot
    (Xavier) distributions, variance ``2 / (fan_in + fan_out)``, and zero the biases: the
    initialisations of DeepXDE's ``FNN`` and of PINNacle's protocol. Tensor-train and device
    layers keep their own initialisation. Draws from torch's global RNG.

    Parameters
    ----------
    module : torch.nn.Module
        The network.
    initializer : {"torch", "glorot_normal", "glorot_uniform"}
        The initialisation.

    Returns
    -------
    torch.nn.Module
        ``module``.

    Examples
    --------
    >>> import torch
    >>> from hybridnet.network import build_mlp, initialize_linear_layers
    >>> _ = torch.manual_seed(0)
    >>> net = initialize_linear_layers(build_mlp(2, 1, (400, 400), "tanh"), "glorot_normal")
    >>> round(net[2].weight.std().item(), 2), net[2].bias.abs().max().item()  # sqrt(2/800)
    (0.05, 0.0)
    """
    if initializer not in INITIALIZERS:
        raise ValueError(f"initializer must be one of {INITIALIZERS}, got {initializer!r}")
    if initializer == "torch":
        return module
    draw = nn.init.xavier_normal_ if initializer == "glorot_normal" else nn.init.xavier_uniform_
    for layer in module.modules():
        if isinstance(layer, nn.Linear):
            draw(layer.weight)
            if layer.bias is not None:
                nn.init.zeros_(layer.bias)
    return module


def default_physical_positions(n_maps):
    """The maps between hidden layers: indices 1 .. n_maps - 2 of the n_maps linear maps.

    Examples
    --------
    Three hidden layers make four linear maps; the input map (0) and the output map (3) stay
    digital.

    >>> from hybridnet.network import default_physical_positions
    >>> default_physical_positions(4)
    [1, 2]
    >>> default_physical_positions(2)  # one hidden layer: no map between hidden layers
    []
    """
    return list(range(1, n_maps - 1))


def make_device(spec, in_features, out_features, options, seed):
    """A black box for one position from a name ("mzi", "mrr", "slm", "usv") or an instance.

    Examples
    --------
    >>> from hybridnet.network import make_device
    >>> from hybridnet.physical import MRRBank
    >>> make_device("mzi", 4, 4, {"phase_bits": 8}, seed=0)
    MZIMesh(in_features=4, out_features=4, n_params=12, phase_bits=8)
    >>> bank = MRRBank(4, 4, seed=0)
    >>> make_device(bank, 4, 4, None, seed=0) is bank  # an instance is copied
    False
    >>> make_device(bank, 4, 8, None, seed=0)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
        ...
    ValueError: physical_layer MRRBank maps 4 -> 4 features, but its position ... maps 4 -> 8; ...
    """
    if isinstance(spec, BlackBox):
        if (spec.in_features, spec.out_features) != (in_features, out_features):
            raise ValueError(f"physical_layer {spec.name} maps {spec.in_features} -> "
                             f"{spec.out_features} features, but its position in the network "
                             f"maps {in_features} -> {out_features}; change "
                             "hidden_layer_sizes or physical_positions to match")
        return copy.deepcopy(spec)
    return DEVICES[spec](in_features, out_features, seed=seed, **(options or {}))


def build_mlp(n_inputs, n_outputs, hidden_layer_sizes=(64, 64), activation="relu", *,
              physical_layer=None, physical_positions=None, device_options=None,
              layer_options=None, tt_rank=None, seed=0):
    """Build an MLP whose chosen linear maps are physical devices or tensor trains.

    Parameters
    ----------
    n_inputs, n_outputs : int
        Input and output widths.
    hidden_layer_sizes : sequence of int, default=(64, 64)
        Widths of the hidden layers.
    activation : {"relu", "tanh", "logistic", "identity", "sin"}, default="relu"
        Activation after every hidden layer.
    physical_layer : {"mzi", "mrr", "slm", "usv"} or BlackBox, optional
        Device kind, or a device instance (copied; its shape must fit its position). None
        builds an all-digital network.
    physical_positions : sequence of int, optional
        Which linear maps become devices, counting from 0 (input map) to
        ``len(hidden_layer_sizes)`` (output map). Default: every map between two hidden layers.
    device_options : dict, optional
        Keyword arguments of the device class (non-idealities such as ``fabrication_error``).
    layer_options : dict, optional
        Keyword arguments of :class:`~hybridnet.BlackBoxLayer` (``training``,
        ``surrogate_rank``, ``zo_samples``, ...).
    tt_rank : int, optional
        Make every digital linear map a :class:`~hybridnet.TTLinear` of this rank.
    seed : int, default=0
        Root seed of the devices and layers: every device and every layer gets its own
        independent streams derived from it (digital initialisation follows torch's global
        RNG).

    Returns
    -------
    torch.nn.Sequential

    Examples
    --------
    >>> from hybridnet.network import build_mlp
    >>> build_mlp(8, 3, (16, 16), physical_layer="mrr")[2].black_box
    MRRBank(in_features=16, out_features=16, n_params=256)
    """
    widths = [n_inputs, *hidden_layer_sizes, n_outputs]
    n_maps = len(widths) - 1
    positions = set()
    if physical_layer is not None:
        given = default_physical_positions(n_maps) if physical_positions is None \
            else list(physical_positions)
        if not all(isinstance(p, numbers.Integral) and not isinstance(p, bool | np.bool_)
                   for p in given):
            raise ValueError("physical_positions must be ints (0 = input map, "
                             f"{n_maps - 1} = output map), got {physical_positions!r}")
        positions = {int(p) for p in given}
        if not positions:
            raise ValueError("physical_layer is set but there is no position for it: the "
                             "default places devices between hidden layers, which needs at "
                             "least two hidden layers; give physical_positions (0 = input map, "
                             f"{n_maps - 1} = output map) or more hidden layers")
        if not positions <= set(range(n_maps)):
            raise ValueError(f"physical_positions must lie in 0..{n_maps - 1}, "
                             f"got {sorted(positions)}")
        if isinstance(physical_layer, BlackBox) and len(positions) > 1:
            raise ValueError("a physical_layer instance is one device and fits one position, "
                             f"got {len(positions)} positions; pass a device name instead")
    layers = []
    map_seeds = spawn_seeds(seed, n_maps)
    for index, (width_in, width_out) in enumerate(zip(widths, widths[1:], strict=False)):
        if index in positions:
            device_seed, layer_seed = spawn_seeds(map_seeds[index], 2)
            device = make_device(physical_layer, width_in, width_out, device_options,
                                 device_seed)
            layers.append(BlackBoxLayer(device, seed=layer_seed, **(layer_options or {})))
        elif tt_rank is not None:
            layers.append(TTLinear(width_in, width_out, tt_rank))
        else:
            layers.append(nn.Linear(width_in, width_out))
        if index < n_maps - 1:
            layers.append(ACTIVATIONS[activation]())
    return nn.Sequential(*layers)
