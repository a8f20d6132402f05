"""Shared machinery of the simulated photonic devices: phase non-idealities and detection.

A phase-programmed device turns the commanded phases ``w`` into the phases it really applies,
in the order the hardware does:

1. phase quantization: the DAC resolves ``phase_bits`` bits over one period (2 pi);
2. thermal crosstalk: each heater leaks ``crosstalk`` of its phase into its two neighbours in
   the parameter order (``phi_eff = C phi`` with C tridiagonal, ones on the diagonal);
3. static fabrication error: a fixed random offset per phase (std ``fabrication_error`` rad),
   drawn once from ``seed`` and unknown to the trainer;
4. phase noise: fresh Gaussian noise (std ``phase_noise`` rad) for every device call;

and the detector adds multiplicative noise to the outputs, ``y + eps |y| detector_noise`` with
``eps ~ N(0, 1)`` per output value.

Quantization uses a straight-through estimator so that the digital-twin baseline
(autograd through the simulator) still receives gradients.
"""

import abc
import math
import numbers

import torch

from .._random import make_generator, randn, spawn_seeds
from .base import BlackBox


def _check_nonnegative(name, value):
    if (isinstance(value, bool) or not isinstance(value, numbers.Real)
            or not 0 <= value < math.inf):
        raise ValueError(f"{name} must be a finite non-negative number, got {value!r}")
    return float(value)


class PhotonicDevice(BlackBox):
    """A simulated device whose parameters are phases, with optional non-idealities.

    Parameters
    ----------
    in_features, out_features, n_params : int
        See :class:`BlackBox`.
    phase_bits : int, optional
        Resolution of the phase DAC over one 2 pi period; None means continuous.
    phase_noise : float, default=0
        Std (rad) of random phase noise drawn afresh for every call.
    crosstalk : float, default=0
        Fraction of each heater's phase leaking into its two neighbours.
    detector_noise : float, default=0
        Relative std of multiplicative output noise.
    fabrication_error : float, default=0
        Std (rad) of the static per-phase fabrication offset.
    seed : int, optional
        Root seed of the fabrication offsets and of the noise stream (two independent streams
        derived from it); None draws one from torch's global RNG.
    name : str, optional
        Name used in error messages.
    """

    def __init__(self, in_features, out_features, n_params, *, phase_bits=None, phase_noise=0.0,
                 crosstalk=0.0, detector_noise=0.0, fabrication_error=0.0, seed=None, name=None):
        super().__init__(in_features, out_features, n_params, name=name)
        if phase_bits is not None and (isinstance(phase_bits, bool)
                                       or not isinstance(phase_bits, int) or phase_bits < 1):
            raise ValueError(f"phase_bits must be a positive int or None, got {phase_bits!r}")
        self.phase_bits = phase_bits
        self.phase_noise = _check_nonnegative("phase_noise", phase_noise)
        self.crosstalk = _check_nonnegative("crosstalk", crosstalk)
        self.detector_noise = _check_nonnegative("detector_noise", detector_noise)
        self.fabrication_error = _check_nonnegative("fabrication_error", fabrication_error)
        self.seed = seed
        # Two streams: the static offsets are a property of the chip, the noise of each call.
        fabrication_seed, noise_seed = spawn_seeds(seed, 2)
        self._generator = make_generator(noise_seed)
        offsets = torch.randn(n_params, generator=make_generator(fabrication_seed))
        offsets *= self.fabrication_error
        self.register_buffer("fabrication_offsets", offsets)

    @abc.abstractmethod
    def _transfer(self, x, phases):
        """The ideal device: x (settings, batch, in), phases (settings, n_params)."""

    def applied_phases(self, params):
        """The phases the device really applies for commanded ``params`` (settings, n_params)."""
        phases = params
        if self.phase_bits is not None:
            step = 2 * math.pi / 2**self.phase_bits
            quantized = torch.round(phases / step) * step
            phases = phases + (quantized - phases).detach()  # straight-through for the twin
        if self.crosstalk:
            leak = torch.zeros_like(phases)
            leak[:, 1:] += phases[:, :-1]
            leak[:, :-1] += phases[:, 1:]
            phases = phases + self.crosstalk * leak
        if self.fabrication_error:
            phases = phases + self.fabrication_offsets.to(phases.dtype)
        if self.phase_noise:
            phases = phases + self.phase_noise * randn(
                phases.shape, self._generator, dtype=phases.dtype, device=phases.device)
        return phases

    def _query(self, x, params):
        y = self._transfer(x, self.applied_phases(params))
        if self.detector_noise:
            noise = randn(y.shape, self._generator, dtype=y.dtype, device=y.device)
            y = y + self.detector_noise * y.abs() * noise
        return y

    def extra_repr(self):
        options = [super().extra_repr()]
        for key in ("phase_bits", "phase_noise", "crosstalk", "detector_noise",
                    "fabrication_error"):
            value = getattr(self, key)
            if value:
                options.append(f"{key}={value}")
        return ", ".join(options)


def linear_transfer(x, matrices):
    """``y = A x`` for a batch per setting: x (settings, batch, n), A (settings, m, n)."""
    return torch.einsum("pbn,pmn->pbm", x, matrices)
