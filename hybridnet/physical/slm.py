"""Spatial light modulator: a phase mask read out as ``y = cos(W) x / sqrt(n)``."""

import math

import torch

from .photonic import PhotonicDevice, grid_neighbours, linear_transfer


class SLM(PhotonicDevice):
    """Spatial light modulator layer, ``y = cos(W) x / sqrt(in_features)``.

    The parameters are the phase matrix ``W`` (out_features x in_features), flattened row by
    row; ``cos(W) = Re(exp(iW))`` is the field a phase-only pixel passes to a coherent detector.

    Parameters
    ----------
    in_features : int
        Input length n.
    out_features : int
        Output length m.
    **options
        Non-idealities and seed, see :class:`~hybridnet.physical.photonic.PhotonicDevice`.

    Examples
    --------
    >>> import torch
    >>> from hybridnet.physical import SLM
    >>> slm = SLM(4, 3, seed=0)
    >>> slm(torch.ones(2, 4), slm.initial_params()).shape
    torch.Size([2, 3])
    """

    # Each phase sets one weight, cos(W): the RGE estimate holds up to about 0.4 rad
    # (benchmarks/zo_smoothing.py).
    max_smoothing = 0.4
    # Nominal chip time: a liquid-crystal frame settles in ~10 ms, a vector takes a camera
    # frame (PhotonicDevice's docstring).
    settle_time = 1e-2
    vector_time = 1e-3

    def __init__(self, in_features, out_features, **options):
        super().__init__(in_features, out_features, in_features * out_features, **options)

    def initial_params(self, generator=None):
        """Phases uniform in (pi/2 - 1, pi/2 + 1): the weights ``cos(W) / sqrt(n)`` span
        about ``(-0.84, 0.84) / sqrt(n)``, the scale of a default ``nn.Linear``, while
        ``|sin(W)| > 0.54`` keeps every phase away from the flat tops of the cosine.

        The reference's narrow start (pi/2 +- 0.1) makes every weight almost zero: it learns
        slowly and, on a phase DAC of 4 bits, rounds every weight to exactly cos(pi/2) = 0,
        leaving a dead device (chance accuracy on digits; 0.94 with this start).
        """
        return math.pi / 2 + 2 * (torch.rand(self.n_params, generator=generator) - 0.5)

    def heater_neighbours(self):
        """The pixels form an ``out_features x in_features`` grid (the pixel array): each
        pixel's neighbours are the ones left, right, above and below it, never across a row's
        end."""
        return grid_neighbours(self.out_features, self.in_features)

    def transfer_matrix(self, phases):
        """Ideal matrices (settings, out_features, in_features) for applied ``phases``."""
        shape = (phases.shape[0], self.out_features, self.in_features)
        return torch.cos(phases).reshape(shape) / math.sqrt(self.in_features)

    def _transfer(self, x, phases):
        return linear_transfer(x, self.transfer_matrix(phases))
