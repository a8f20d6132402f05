"""Shared machinery of the simulated photonic devices: phase non-idealities and detection.

A phase-programmed device turns the commanded phases ``w`` into the phases it really applies,
in the order the hardware does:

1. phase quantization: the DAC resolves ``phase_bits`` bits over one period (2 pi);
2. thermal crosstalk: each heater leaks ``crosstalk`` of its phase into each heater next to it
   on the chip (``phi_eff = phi + crosstalk A (phi mod 2 pi)``, A the adjacency matrix of the
   layout); every device documents its layout in :meth:`PhotonicDevice.heater_neighbours`.
   What leaks is the heater's power, and a heater only heats: the controller drives the
   power for the commanded phase wrapped to [0, 2 pi), never an extra period, so the leak
   follows the wrapped phase and a phase moved by 2 pi changes nothing;
3. static fabrication error: a fixed random offset per phase (std ``fabrication_error`` rad),
   drawn once from ``seed`` and unknown to the trainer;
4. phase noise: fresh Gaussian noise (std ``phase_noise`` rad) for every device call;

and the detector adds multiplicative noise to the outputs, ``y + eps |y| detector_noise`` with
``eps ~ N(0, 1)`` per output value.

Quantization uses a straight-through estimator so that the digital-twin baseline
(autograd through the simulator) still receives gradients.
"""

import abc
import copy
import math
import numbers

import torch

from .._random import make_generator, randn, spawn_seeds
from ._structure import SiteLayout, local_change_outputs
from .base import BlackBox, _coordinate_settings


def _check_nonnegative(name, value):
    if (isinstance(value, bool) or not isinstance(value, numbers.Real)
            or not 0 <= value < math.inf):
        raise ValueError(f"{name} must be a finite non-negative number, got {value!r}")
    return float(value)


# What a structured answer to a coordinate-wise request stands in for (see
# PhotonicDevice._answers_from_structure).
STRUCTURE_STANDS_FOR = ("_transfer", "_detect", "_query", "applied_phases",
                        "_with_detector_noise", "_column_sites", "_site_blocks")


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
        Fraction of each heater's phase, wrapped to [0, 2 pi), leaking into each of its
        neighbours on the chip (see :meth:`heater_neighbours`).
    detector_noise : float, default=0
        Relative std of multiplicative output noise.
    fabrication_error : float, default=0
        Std (rad) of the static per-phase fabrication offset.
    seed : int, optional
        Root seed of the fabrication offsets and of the noise stream (two independent streams
        derived from it); None draws one from torch's global RNG.
    name : str, optional
        Name used in error messages.
    settle_time, vector_time : float, optional
        The chip-time model (see :class:`BlackBox`); default: the class's nominal values.

    The nominal chip-time model of the simulated chips, for planning (orders of magnitude, not
    a particular chip's data sheet): thermo-optic phase shifters (MZI meshes, U Sigma V,
    microring banks) settle in about ``settle_time = 1e-4`` s and take one more vector in
    ``vector_time = 1e-9`` s (GHz modulators and detectors); a liquid-crystal SLM settles in
    about 1e-2 s and takes a vector per camera frame, 1e-3 s.

    Examples
    --------
    A subclass implements the ideal device, ``_transfer``, and ``initial_params``; the base
    class applies the non-idealities to the phases before ``_transfer`` sees them.

    >>> import math
    >>> import torch
    >>> from hybridnet.physical import PhotonicDevice
    >>> class Attenuators(PhotonicDevice):  # one MZI attenuator per channel
    ...     def __init__(self, n, **options):
    ...         super().__init__(n, n, n, **options)
    ...     def initial_params(self, generator=None):
    ...         return torch.zeros(self.n_params)
    ...     def _transfer(self, x, phases):  # y_k = cos(phase_k / 2)^2 x_k
    ...         return x * torch.cos(phases[:, None, :] / 2) ** 2
    >>> device = Attenuators(3, phase_bits=2, seed=0)  # a 2-bit DAC: steps of pi / 2
    >>> device.parameter_resolution == math.pi / 2
    True
    >>> y = device(torch.ones(1, 3), torch.tensor([0.0, 1.7, math.pi]))  # 1.7 -> pi / 2
    >>> y.round(decimals=4).tolist()
    [[1.0, 0.5, 0.0]]
    >>> device.heater_neighbours().tolist()
    [[0, 1], [1, 2]]
    """

    # Nominal thermo-optic chip time (the docstring's model); a subclass declares its own.
    settle_time = 1e-4
    vector_time = 1e-9

    def __init__(self, in_features, out_features, n_params, *, phase_bits=None, phase_noise=0.0,
                 crosstalk=0.0, detector_noise=0.0, fabrication_error=0.0, seed=None, name=None,
                 settle_time=None, vector_time=None):
        super().__init__(in_features, out_features, n_params, name=name,
                         settle_time=settle_time, vector_time=vector_time)
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
        # A third for the rest of a subclass's hidden chip state (an MZI mesh's losses), so that
        # adding it leaves the offsets unchanged (spawn(3) begins with the children of spawn(2)).
        fabrication_seed, noise_seed, self._chip_state_seed = spawn_seeds(seed, 3)
        self._generator = make_generator(noise_seed)
        offsets = torch.randn(n_params, generator=make_generator(fabrication_seed))
        offsets *= self.fabrication_error
        self.register_buffer("fabrication_offsets", offsets)

    @property
    def parameter_resolution(self):
        """One DAC level, ``2 pi / 2**phase_bits`` rad, or None for a continuous DAC."""
        return None if self.phase_bits is None else 2 * math.pi / 2**self.phase_bits

    @property
    def parameter_noise(self):
        """``phase_noise``."""
        return self.phase_noise

    @property
    def output_noise(self):
        """``detector_noise``."""
        return self.detector_noise

    def heater_neighbours(self):
        """Pairs of parameters whose heaters sit next to each other on the chip.

        The base class assumes one row of heaters in parameter order; devices with another
        layout override this.

        Returns
        -------
        torch.Tensor
            (n_pairs, 2) int64, each unordered pair once.
        """
        return chain_neighbours(self.n_params)

    def _neighbours(self):
        if getattr(self, "_neighbour_cache", None) is None:
            self._neighbour_cache = self.heater_neighbours()
        return self._neighbour_cache

    def nominal_twin(self):
        """A noise-free copy of the design: what a simulator knows of this chip.

        The copy keeps the design (shape, phase DAC, crosstalk, nominal losses) and drops what
        differs from chip to chip or from call to call: the fabrication offsets are zero, and
        phase and detector noise are off. :func:`hybridnet.calibrate` fits the hidden part back
        from queries.

        Returns
        -------
        PhotonicDevice
        """
        twin = copy.deepcopy(self)
        twin.fabrication_error = twin.phase_noise = twin.detector_noise = 0.0
        twin.fabrication_offsets.zero_()
        twin.reset_counters()
        return twin

    def calibration_buffers(self):
        """Names of the buffers :func:`hybridnet.calibrate` fits: the hidden chip state."""
        return ["fabrication_offsets"]

    def nonnegative_buffers(self):
        """Names, among :meth:`calibration_buffers`, of those that cannot be negative (losses):
        :func:`hybridnet.calibrate` keeps them at or above 0. None here."""
        return []

    @abc.abstractmethod
    def _transfer(self, x, phases):
        """The ideal device: x (settings, batch, in), phases (settings, n_params)."""

    def applied_phases(self, params):
        """The phases the device really applies for commanded ``params`` (settings, n_params)."""
        phases = params
        if self.phase_bits is not None:  # straight-through, for the twin's gradients
            phases = phases + (self._quantized(phases) - phases).detach()
        if self.crosstalk:
            # The heater power that leaks is periodic in the commanded phase (see the module
            # docstring); remainder's gradient is 1 almost everywhere, so autograd still works.
            heat = torch.remainder(phases, 2 * math.pi)
            first, second = self._neighbours().to(phases.device).unbind(1)
            leak = torch.zeros_like(phases)
            leak.index_add_(1, first, heat[:, second])
            leak.index_add_(1, second, heat[:, first])
            phases = phases + self.crosstalk * leak
        # Always added: a calibrated twin carries fitted offsets with fabrication_error = 0.
        phases = phases + self.fabrication_offsets.to(phases.dtype)
        if self.phase_noise:
            phases = phases + self.phase_noise * randn(
                phases.shape, self._generator, dtype=phases.dtype, device=phases.device)
        return phases

    def noise_state(self):
        """The state of the stream that draws the phase and detector noise (a tensor).

        See :meth:`BlackBox.noise_state`.
        """
        return self._generator.get_state()

    def set_noise_state(self, state):
        """Restore the noise stream to a state :meth:`noise_state` returned.

        See :meth:`BlackBox.set_noise_state`.
        """
        self._generator.set_state(state)

    def _site_layout(self):
        """``(phase_site, site_column, site_phases)`` of a device built of columns of small
        blocks (see ``hybridnet.physical._structure``), or None (the default): no
        structure. A device that returns a layout also implements ``_column_sites``,
        ``_detect`` and ``_detects_real_part``."""
        return None

    def _answers_from_structure(self):
        """Whether the class that declares the structure also defines everything the structured
        answer stands in for: a subclass that changes the transfer, the read-out, the phases or
        the noise (a non-linear read-out on top of a mesh, say) is answered by building the
        settings and querying them."""
        mro = type(self).__mro__

        def owner(name):
            return next((cls for cls in mro if name in vars(cls)), None)

        declared_by = owner("_site_layout")
        return declared_by is not PhotonicDevice and all(
            owner(name) in (declared_by, PhotonicDevice) for name in STRUCTURE_STANDS_FOR)

    def _layout(self, device):
        """The ``SiteLayout`` on ``device``, made once; None without structure."""
        cache = getattr(self, "_layout_cache", None)
        if cache is None or cache[0] != device:
            parts = self._site_layout() if self._answers_from_structure() else None
            layout = None if parts is None else SiteLayout(*(t.to(device) for t in parts))
            cache = self._layout_cache = (device, layout)
        return cache[1]

    def _neighbour_table(self, device):
        """(n_params, most neighbours) long: each heater's neighbours, -1 where it has fewer."""
        cache = getattr(self, "_neighbour_table_cache", None)
        if cache is None or cache.device != device:
            pairs = self._neighbours()
            ends = torch.cat([pairs, pairs.flip(1)])  # (heater, neighbour), both ways
            ends = ends[torch.argsort(ends[:, 0], stable=True)]
            counts = torch.bincount(ends[:, 0], minlength=self.n_params)
            slot = torch.arange(len(ends)) - torch.repeat_interleave(
                torch.cumsum(counts, 0) - counts, counts)
            cache = torch.full((self.n_params, int(counts.max())), -1, dtype=torch.long)
            cache[ends[:, 0], slot] = ends[:, 1]
            cache = self._neighbour_table_cache = cache.to(device)
        return cache

    def query_coordinates(self, x, params, coordinates, step):
        """The outputs at ``params + step e_c`` for each coordinate c, one request of
        ``len(coordinates)`` settings; see :meth:`BlackBox.query_coordinates`.

        On a device built of columns of small blocks (an MZI mesh, U Sigma V), a phase moves
        one block, and the phases its heater leaks into lie in the same column: each setting's
        output is then the unperturbed one plus the change of those blocks, carried to the
        outputs (``hybridnet.physical._structure``), O(batch x outputs) a setting instead
        of a propagation through the whole mesh. Phase noise (every phase moves at every call),
        autograd, and a subclass that changes the transfer, read-out, phases or noise fall back
        to building the settings. The counts, the detector noise drawn
        and the outputs (to rounding) are those of the settings queried one by one.

        Parameters
        ----------
        x : torch.Tensor
            Inputs, (batch, in_features).
        params : torch.Tensor
            The unperturbed phases, (n_params,).
        coordinates : torch.Tensor
            (P,) long: the phase each setting moves.
        step : float
            How far it moves (rad).

        Returns
        -------
        torch.Tensor
            (P, batch, out_features).
        """
        layout = self._layout(params.device)
        recording = torch.is_grad_enabled() and (x.requires_grad or params.requires_grad or any(
            buffer.requires_grad for buffer in self.buffers()))
        if (layout is None or self.phase_noise or recording or self.settings_per_call
                or x.dim() != 2 or x.shape[1] != self.in_features
                or params.shape != (self.n_params,)):
            return super().query_coordinates(x, params, coordinates, step)
        dtype = torch.promote_types(x.dtype, params.dtype)
        if not dtype.is_floating_point:
            dtype = torch.get_default_dtype()
        x, params = x.to(dtype), params.to(dtype)
        return self._serve(len(coordinates), len(x), lambda: self._coordinate_outputs(
            layout, x, params, coordinates, step))

    def _coordinate_outputs(self, layout, x, params, coordinates, step):
        reference = self.applied_phases(params.unsqueeze(0))[0]
        rows, phase_index, values = self._moved_phases(reference, params, coordinates, step)
        tables, blocks = self._column_sites(x, reference)
        real = self._detects_real_part()
        y = local_change_outputs(layout, tables, blocks, reference, rows, phase_index, values,
                                 len(coordinates), real_part=real)
        if y is None:  # a layout whose leaks cross columns: propagate every setting
            settings = _coordinate_settings(params, coordinates, step)
            y = self._transfer(x.expand(len(settings), -1, -1), self.applied_phases(settings))
        elif not real:
            y = self._detect(y)
        return self._with_detector_noise(y)

    def _moved_phases(self, reference, params, coordinates, step):
        """The applied phases that move when parameter ``coordinates[r]`` alone moves by
        ``step``, for every r: ``(rows, phase_index, values)``, the new value of applied phase
        ``phase_index[q]`` in setting ``rows[q]``.

        :meth:`applied_phases` without phase noise, written for one moved parameter: its DAC
        level moves, and through crosstalk its neighbours by ``crosstalk`` times the change of
        its wrapped phase.
        """
        before, after = (self._quantized(params[coordinates] + shift) for shift in (0.0, step))
        rows = torch.arange(len(coordinates), device=params.device)
        moved = [(rows, coordinates, reference[coordinates] + (after - before))]
        if self.crosstalk:
            period = 2 * math.pi
            leak = self.crosstalk * (torch.remainder(after, period)
                                     - torch.remainder(before, period))
            neighbours = self._neighbour_table(params.device)[coordinates]  # (P, most)
            real = neighbours >= 0
            row_of = rows.unsqueeze(1).expand_as(neighbours)[real]
            moved.append((row_of, neighbours[real], reference[neighbours[real]]
                          + leak.unsqueeze(1).expand_as(neighbours)[real]))
        return tuple(torch.cat(parts) for parts in zip(*moved, strict=True))

    def _quantized(self, phases):
        """``phases`` at the DAC's resolution (unchanged for a continuous DAC)."""
        if self.phase_bits is None:
            return phases
        step = self.parameter_resolution
        return torch.round(phases / step) * step

    def _query(self, x, params):
        return self._with_detector_noise(self._transfer(x, self.applied_phases(params)))

    def _with_detector_noise(self, y):
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


def chain_neighbours(n, offset=0):
    """Neighbour pairs of ``n`` heaters in one row, numbered from ``offset``: (k, k + 1).

    Examples
    --------
    >>> from hybridnet.physical.photonic import chain_neighbours
    >>> chain_neighbours(4).tolist()
    [[0, 1], [1, 2], [2, 3]]
    >>> chain_neighbours(3, offset=10).tolist()
    [[10, 11], [11, 12]]
    """
    first = torch.arange(offset, offset + n - 1)
    return torch.stack([first, first + 1], 1)


def grid_neighbours(rows, columns, offset=0):
    """Neighbour pairs of a rows x columns grid of heaters numbered row by row from ``offset``:
    left-right and up-down neighbours, never across the end of a row.

    Examples
    --------
    A 2 x 3 grid, heaters ``[[0, 1, 2], [3, 4, 5]]``: the pairs within each row, then the
    columns.

    >>> from hybridnet.physical.photonic import grid_neighbours
    >>> grid_neighbours(2, 3).tolist()
    [[0, 1], [1, 2], [3, 4], [4, 5], [0, 3], [1, 4], [2, 5]]
    """
    index = torch.arange(rows * columns).reshape(rows, columns) + offset
    across = torch.stack([index[:, :-1].flatten(), index[:, 1:].flatten()], 1)
    down = torch.stack([index[:-1].flatten(), index[1:].flatten()], 1)
    return torch.cat([across, down])


def linear_transfer(x, matrices):
    """``y = A x`` for a batch per setting: x (settings, batch, n), A (settings, m, n).

    Examples
    --------
    >>> import torch
    >>> from hybridnet.physical.photonic import linear_transfer
    >>> generator = torch.Generator().manual_seed(0)
    >>> x = torch.randn(2, 3, 4, generator=generator)  # 2 settings, a batch of 3, n = 4
    >>> matrices = torch.randn(2, 5, 4, generator=generator)  # one 5 x 4 matrix per setting
    >>> y = linear_transfer(x, matrices)
    >>> y.shape
    torch.Size([2, 3, 5])
    >>> torch.allclose(y[1], x[1] @ matrices[1].T)
    True
    """
    return torch.einsum("pbn,pmn->pbm", x, matrices)
