"""Microring resonator (MRR) weight bank with balanced detection."""

import math

import torch

from .photonic import PhotonicDevice, grid_neighbours, linear_transfer


class MRRBank(PhotonicDevice):
    """Microring weight bank, ``y = (2 t(Phi) - 1) x``.

    Each weight is set by the detuning phase of one ring; the through-port transmission is
    ``t(phi) = sqrt((a^2 + r^2 - 2 r a cos phi) / (1 + r^2 a^2 - 2 r a cos phi))`` and balanced
    detection maps it to ``2 t - 1``, so weights lie in about [-0.29, 0.98]. The parameters are
    the detunings ``Phi`` (out_features x in_features), flattened row by row.

    Parameters
    ----------
    in_features : int
        Input length n.
    out_features : int
        Output length m.
    loss : float, default=0.8
        Round-trip amplitude transmission ``a`` of a ring.
    coupling : float, default=0.9
        Self-coupling coefficient ``r``.
    **options
        Non-idealities and seed, see :class:`~hybridnet.physical.photonic.PhotonicDevice`.

    Examples
    --------
    >>> import torch
    >>> from hybridnet.physical import MRRBank
    >>> bank = MRRBank(4, 3, seed=0)
    >>> bank(torch.ones(2, 4), bank.initial_params()).shape
    torch.Size([2, 3])
    """

    # Beyond 0.1 rad the cosine of an RGE estimate with the gradient falls on a 64-wide
    # bank (benchmarks/zo_smoothing.py).
    max_smoothing = 0.1

    def __init__(self, in_features, out_features, *, loss=0.8, coupling=0.9, **options):
        super().__init__(in_features, out_features, in_features * out_features, **options)
        for arg, value in (("loss", loss), ("coupling", coupling)):
            if not 0 < value < 1:
                raise ValueError(f"{arg} must lie in (0, 1), got {value!r}")
        self.loss = float(loss)
        self.coupling = float(coupling)

    def initial_params(self, generator=None):
        """Detunings uniform in (0.01, pi/4)."""
        u = torch.rand(self.n_params, generator=generator)
        return 0.01 + (math.pi / 4 - 0.01) * u

    def heater_neighbours(self):
        """The rings form an ``out_features x in_features`` grid, one bank of ``in_features``
        rings along a bus waveguide per output and the banks side by side: each heater's
        neighbours are the ones left, right, above and below it, never across a row's end."""
        return grid_neighbours(self.out_features, self.in_features)

    def transfer_matrix(self, phases):
        """Ideal matrices (settings, out_features, in_features) for applied ``phases``."""
        a, r = self.loss, self.coupling
        cos = torch.cos(phases)
        t = torch.sqrt((a * a + r * r - 2 * r * a * cos) / (1 + r * r * a * a - 2 * r * a * cos))
        shape = (phases.shape[0], self.out_features, self.in_features)
        return (2 * t - 1).reshape(shape)

    def _transfer(self, x, phases):
        return linear_transfer(x, self.transfer_matrix(phases))
