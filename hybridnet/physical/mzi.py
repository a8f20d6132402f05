"""Mach-Zehnder interferometer mesh in the Clements rectangular layout."""

import functools
import math

import torch

from .._random import make_generator
from .photonic import PhotonicDevice, _check_nonnegative

OUTPUTS = ("real", "intensity")
# Widest mesh whose unitary is built as a tree of matrix products, and the most complex numbers
# the tree's first level may hold for all settings together (see MZIMesh.unitary).
TREE_MAX_MODES = 128
TREE_MAX_ELEMENTS = 2**24


def mzi_transfer(theta, phi):
    """2x2 transfer matrices of MZIs with phases ``theta``, ``phi`` (any equal shapes).

    With ``p1 = (theta - phi) / 2`` and ``p2 = (theta + phi) / 2``:
    ``T = exp(i p2) / sqrt(2) [[sin p1 + i sin p2, -cos p1 + i cos p2],
    [cos p1 + i cos p2, sin p1 - i sin p2]]``, a unitary. Returns shape (..., 2, 2), complex.

    Examples
    --------
    >>> import math
    >>> import torch
    >>> from hybridnet.physical.mzi import mzi_transfer
    >>> theta = torch.tensor([0.0, math.pi, 1.0], dtype=torch.float64)
    >>> phi = torch.tensor([0.0, 0.0, 2.0], dtype=torch.float64)
    >>> T = mzi_transfer(theta, phi)
    >>> T.shape, T.dtype
    (torch.Size([3, 2, 2]), torch.complex128)
    >>> eye = torch.eye(2, dtype=torch.complex128)
    >>> torch.allclose(T @ T.mH, eye.expand(3, 2, 2))  # unitary: no light is lost
    True
    >>> (T[0].abs() ** 2).round(decimals=6).tolist()  # theta = 0: the cross state
    [[0.0, 1.0], [1.0, 0.0]]
    >>> (T[1].abs() ** 2).round(decimals=6).tolist()  # theta = pi: the bar state
    [[1.0, 0.0], [0.0, 1.0]]
    """
    p1, p2 = (theta - phi) / 2, (theta + phi) / 2
    s1, c1, s2, c2 = torch.sin(p1), torch.cos(p1), torch.sin(p2), torch.cos(p2)
    rows = torch.stack([torch.complex(s1, s2), torch.complex(-c1, c2),
                        torch.complex(c1, c2), torch.complex(s1, -s2)], dim=-1)
    phase = torch.polar(torch.full_like(p2, 1 / math.sqrt(2)), p2)
    return (rows * phase.unsqueeze(-1)).reshape(*theta.shape, 2, 2)


@functools.cache
def _repetition_entries(n_modes, device):
    """Flat (row * N + column) positions of a repetition's nonzero entries, in the order
    :meth:`MZIMesh.unitary` lists them: row 0's two, then for each odd MZI k its rows 2k+1 and
    2k+2 over columns 2k .. 2k+3, then row N-1's two. Shared and read-only."""
    pairs = torch.arange(n_modes // 2 - 1)
    rows = (2 * pairs + 1)[:, None, None] + torch.arange(2)[:, None]
    columns = (2 * pairs)[:, None, None] + torch.arange(4)
    last = (n_modes - 1) * n_modes
    return torch.cat([torch.tensor([0, 1]), (rows * n_modes + columns).flatten(),
                      torch.tensor([last + n_modes - 2, last + n_modes - 1])]).to(device)


class MZIMesh(PhotonicDevice):
    """A rectangular (Clements) mesh of MZIs, ``y = Re(U(w) x)[:out_features]``.

    ``N = max(in_features, out_features)`` rounded up to even; ``x`` is zero-padded to N modes.
    ``U`` is N/2 repetitions of an even column of MZIs on mode pairs (0,1), (2,3), ... followed by
    an odd column on (1,2), (3,4), ...: N(N-1)/2 MZIs with two phases each, so
    ``n_params = N^2 - N``. The parameters are all thetas (column by column, top to bottom),
    then all phis in the same order.

    Each MZI passes its light with amplitude ``10^(-L/20)`` for its insertion loss L (dB); the
    losses vary from MZI to MZI around ``insertion_loss`` (std ``insertion_loss_std``, drawn
    once with the fabrication offsets), so a lossy U is no longer unitary. Modes 1 .. N-2
    cross N MZIs, the edge modes 0 and N-1 (which skip the odd columns) N/2.

    Parameters
    ----------
    in_features : int
        Input length n.
    out_features : int
        Output length m.
    output : {"real", "intensity"}, default="real"
        "real" reads the real part of the field (coherent detection, linear in x);
        "intensity" reads ``|U x|^2`` (photodetection, not linear in x).
    insertion_loss : float, default=0
        Mean insertion loss of one MZI, in dB (real MZIs lose 0.1-0.5 dB).
    insertion_loss_std : float, default=0
        Std (dB) of the per-MZI loss around the mean, a fabrication spread (losses are clipped
        at 0 dB).
    **options
        Non-idealities and seed, see :class:`~hybridnet.physical.photonic.PhotonicDevice`.

    Attributes
    ----------
    insertion_losses : torch.Tensor
        The loss of every MZI in dB, (n_params / 2,), in the order of the thetas (a buffer).

    Examples
    --------
    >>> import torch
    >>> from hybridnet.physical import MZIMesh
    >>> mesh = MZIMesh(4, 4, seed=0)
    >>> mesh.n_params
    12
    >>> mesh(torch.ones(2, 4), mesh.initial_params()).shape
    torch.Size([2, 4])
    """

    # Beyond 0.1 rad the cosine of an RGE estimate with the gradient falls on a 64-wide
    # mesh (benchmarks/zo_smoothing.py).
    max_smoothing = 0.1

    def __init__(self, in_features, out_features, *, output="real", insertion_loss=0.0,
                 insertion_loss_std=0.0, **options):
        n_modes = max(in_features, out_features)
        n_modes += n_modes % 2
        super().__init__(in_features, out_features, n_modes * n_modes - n_modes, **options)
        if output not in OUTPUTS:
            raise ValueError(f"output must be one of {OUTPUTS}, got {output!r}")
        self.output = output
        self.linear = output == "real"
        self.n_modes = n_modes
        self.insertion_loss = _check_nonnegative("insertion_loss", insertion_loss)
        self.insertion_loss_std = _check_nonnegative("insertion_loss_std", insertion_loss_std)
        spread = torch.randn(self.n_params // 2, generator=make_generator(self._chip_state_seed))
        losses = (self.insertion_loss + self.insertion_loss_std * spread).clamp(min=0)
        self.register_buffer("insertion_losses", losses)
        self._unitary_memo = None

    def heater_neighbours(self):
        """Heaters next to each other on the chip: within one column of MZIs, the theta heaters
        of two vertically adjacent MZIs, and their phi heaters (the columns are an MZI length
        apart, the MZIs of a column one waveguide pitch). Nothing leaks from one column into the
        next, nor from the last theta into the first phi as the parameter order would have it.
        """
        half, n_mzi = self.n_modes // 2, self.n_params // 2
        repetitions = torch.arange(half)[:, None] * (2 * half - 1)
        even = repetitions + torch.arange(half - 1)            # MZI k and k + 1 of an even column
        odd = repetitions + half + torch.arange(max(half - 2, 0))  # ... and of an odd column
        first = torch.cat([even.flatten(), odd.flatten()])
        thetas = torch.stack([first, first + 1], 1)
        return torch.cat([thetas, thetas + n_mzi])

    def nominal_twin(self):
        """A noise-free copy of the design with zero phase offsets and every MZI at the nominal
        ``insertion_loss``; see :meth:`PhotonicDevice.nominal_twin`."""
        twin = super().nominal_twin()
        twin.insertion_loss_std = 0.0
        twin.insertion_losses.fill_(self.insertion_loss)
        return twin

    def calibration_buffers(self):
        """The phase offsets and the per-MZI losses."""
        return ["fabrication_offsets", "insertion_losses"]

    def nonnegative_buffers(self):
        """The per-MZI losses: an MZI cannot amplify."""
        return ["insertion_losses"]

    def initial_params(self, generator=None):
        """Phases ~ N(pi/2, 1/sqrt(N))."""
        return math.pi / 2 + torch.randn(self.n_params, generator=generator) / math.sqrt(
            self.n_modes)

    def _columns(self, phases):
        """Transfer matrices of the even and odd columns, one pair per repetition."""
        half = self.n_modes // 2
        n_mzi = self.n_params // 2
        blocks = mzi_transfer(phases[:, :n_mzi], phases[:, n_mzi:])  # (settings, n_mzi, 2, 2)
        if bool(self.insertion_losses.any()):
            amplitude = 10 ** (-self.insertion_losses.to(phases.dtype) / 20)
            blocks = blocks * amplitude[:, None, None]
        per_repetition = blocks.reshape(phases.shape[0], half, 2 * half - 1, 2, 2)
        return per_repetition[:, :, :half], per_repetition[:, :, half:]

    def _propagate(self, field, phases, entering=None):
        """Send row vectors ``field`` (settings, batch, N) complex through the mesh.

        The field is kept as its even modes ``a`` and odd modes ``b``: an even column mixes the
        pairs (a_k, b_k), an odd column the pairs (b_k, a_{k+1}), so every column is a few
        elementwise products over all settings and inputs at once. The loop runs once per
        repetition (N/2 times), so the coefficients are split per repetition beforehand: inside
        the loop every tensor op is arithmetic, not indexing. A list ``entering`` receives the
        field entering each column at its MZIs' two modes, (settings, batch, MZIs, 2).
        """
        even, odd = self._columns(phases)

        def per_repetition(blocks):
            # (settings, repetitions, pairs, 2, 2) -> for each entry (i, j), one tensor
            # (settings, 1, pairs) per repetition, broadcasting over the batch.
            return [blocks[..., i, j].unsqueeze(1).unbind(2) for i in (0, 1) for j in (0, 1)]

        even_00, even_01, even_10, even_11 = per_repetition(even)
        odd_00, odd_01, odd_10, odd_11 = per_repetition(odd)
        a, b = field[..., 0::2], field[..., 1::2]
        for r in range(self.n_modes // 2):
            if entering is not None:
                entering.append(torch.stack([a, b], -1))
            a, b = (torch.addcmul(even_00[r] * a, even_01[r], b),
                    torch.addcmul(even_10[r] * a, even_11[r], b))
            if self.n_modes > 2:
                upper, lower = b[..., :-1], a[..., 1:]
                if entering is not None:
                    entering.append(torch.stack([upper, lower], -1))
                b = torch.cat([torch.addcmul(odd_00[r] * upper, odd_01[r], lower),
                               b[..., -1:]], -1)
                a = torch.cat([a[..., :1], torch.addcmul(odd_10[r] * upper, odd_11[r], lower)],
                              -1)
        return torch.stack([a, b], dim=-1).flatten(-2)

    def _site_layout(self, phase_offset=0, site_offset=0, column_offset=0):
        """The MZIs as sites (see ``hybridnet.physical._structure``): MZI m owns theta m and
        phi m; repetition r holds columns 2 r (its first N/2 MZIs) and 2 r + 1 (the rest).
        The offsets place the mesh inside a larger device; returns (phase_site, site_column,
        site_phases)."""
        half, n_mzi = self.n_modes // 2, self.n_params // 2
        mzi = torch.arange(n_mzi)
        column = 2 * (mzi // (2 * half - 1)) + (mzi % (2 * half - 1) >= half).long()
        site_phases = torch.stack([mzi, mzi + n_mzi], 1) + phase_offset
        return torch.cat([mzi, mzi]) + site_offset, column + column_offset, site_phases

    def _site_fields(self, field, phases):
        """Fields entering every MZI, (n_mzi, batch, 2), and leaving the mesh, (batch, N), for
        one input batch ``field`` (batch, N) complex at applied ``phases`` (n_params,)."""
        entering = []
        output = self._propagate(field.unsqueeze(0), phases.unsqueeze(0), entering)[0]
        return torch.cat(entering, -2)[0].transpose(0, 1), output

    def _site_suffix(self, rows, phases):
        """How ``rows @ U`` (outputs, N), a read-out after the mesh, depends on each MZI's two
        output modes, (n_mzi, outputs, 2); and ``rows @ U`` itself (outputs, N).

        ``rows`` go through the columns from the last to the first, each column multiplying
        them on the right (``Q <- Q C``), the transpose of :meth:`_propagate`.
        """
        even, odd = (blocks[0] for blocks in self._columns(phases.unsqueeze(0)))
        qa, qb = rows[:, 0::2], rows[:, 1::2]
        reached = []
        for r in reversed(range(self.n_modes // 2)):
            if self.n_modes > 2:
                t = odd[r]
                upper, lower = qb[:, :-1], qa[:, 1:]
                reached.append(torch.stack([upper, lower], -1))
                qb = torch.cat([upper * t[:, 0, 0] + lower * t[:, 1, 0], qb[:, -1:]], -1)
                qa = torch.cat([qa[:, :1], upper * t[:, 0, 1] + lower * t[:, 1, 1]], -1)
            t = even[r]
            reached.append(torch.stack([qa, qb], -1))
            qa, qb = qa * t[:, 0, 0] + qb * t[:, 1, 0], qa * t[:, 0, 1] + qb * t[:, 1, 1]
        suffix = torch.cat(reached[::-1], -2).transpose(0, 1)
        return suffix, torch.stack([qa, qb], -1).flatten(-2)

    def _site_blocks(self, mzi, phases):
        """Transfer matrices (Q, 2, 2) of MZIs ``mzi`` (Q,) at applied (theta, phi) (Q, 2),
        with their losses."""
        blocks = mzi_transfer(phases[:, 0], phases[:, 1])
        if bool(self.insertion_losses.any()):
            blocks = blocks * (10 ** (-self.insertion_losses[mzi].to(phases.dtype) / 20))[
                :, None, None]
        return blocks

    def _column_sites(self, x, reference):
        """The structure's tables at applied phases ``reference`` for inputs ``x`` (batch, n),
        and the block function (see ``_structure.local_change_outputs``).
        """
        field = self._padded_field(x)
        fields, output = self._site_fields(field, reference)
        rows = torch.eye(self.n_modes, dtype=field.dtype, device=field.device)
        suffix, _ = self._site_suffix(rows[:self.out_features], reference)
        return (fields, suffix, output[:, :self.out_features]), self._site_blocks

    def _padded_field(self, x):
        """``x`` zero-padded to N modes, complex."""
        padded = torch.nn.functional.pad(x, (0, self.n_modes - self.in_features))
        return padded.to(torch.promote_types(padded.dtype, torch.complex64))

    def _detect(self, field):
        """What the detectors read of the output field."""
        return field.real if self.output == "real" else field.abs() ** 2

    def _detects_real_part(self):
        return self.output == "real"

    def unitary(self, phases):
        """The mesh's unitaries (settings, N, N) for applied ``phases`` (settings, n_params).

        Up to ``TREE_MAX_MODES`` modes, U is the product of the N/2 repetition matrices taken
        pairwise in a tree: about N^4 / 2 multiply-adds in log2(N / 2) batched matrix products,
        which beats N sequential column steps whose fixed per-operation cost dominates at these
        sizes (a 64-mode U in about a third of the time on a 2-core CPU). Wider meshes, and
        requests so large that the N/2 matrices of every setting would not fit in
        ``TREE_MAX_ELEMENTS``, propagate the identity column by column (N^3 work, N^2 memory).
        """
        n = self.n_modes
        if n > TREE_MAX_MODES or phases.shape[0] * n**3 // 2 > TREE_MAX_ELEMENTS:
            cdtype = torch.complex128 if phases.dtype == torch.float64 else torch.complex64
            eye = torch.eye(n, dtype=cdtype, device=phases.device)
            # Row j of the propagated identity is U e_j, i.e. the transpose of U.
            return self._propagate(eye.expand(phases.shape[0], -1, -1), phases).transpose(1, 2)
        even, odd = self._columns(phases)
        n_settings, n_repetitions = even.shape[:2]
        # A repetition R = (odd column)(even column) has at most 4 nonzeros per row: row 0 and
        # row N-1 keep their even MZI's row; rows 2k+1 and 2k+2 mix row 1 of even MZI k and
        # row 0 of even MZI k+1 by odd MZI k. Scattering those entries into zeros in one op
        # built the 64-mode U in 1.46 ms against 2.05 ms when each column was built densely and
        # the two multiplied (one thread, same run).
        upper = odd[..., :, :1] * even[:, :, :-1, None, 1, :]
        lower = odd[..., :, 1:] * even[:, :, 1:, None, 0, :]
        entries = torch.cat([even[:, :, 0, 0, :], torch.cat([upper, lower], -1).flatten(2),
                             even[:, :, -1, 1, :]], -1)
        factors = entries.new_zeros(n_settings, n_repetitions, n * n).index_copy(
            2, _repetition_entries(n, phases.device), entries).view(n_settings, n_repetitions,
                                                                    n, n)
        # U = R_{N/2-1} ... R_1 R_0: multiply neighbours (later on the left) until one is left.
        while factors.shape[1] > 1:
            count = factors.shape[1]
            even_count = count - count % 2
            products = factors[:, 1:even_count:2] @ factors[:, 0:even_count:2]
            factors = torch.cat([products, factors[:, even_count:]], 1)
        return factors[:, 0]

    def _memoized_unitary(self, phases):
        """U for one setting of applied phases, remembered until the phases change.

        In-situ training queries the device several times at the same phases (the forward
        pass, then the surrogate's probes), so the simulator builds U once and answers the rest
        by a matrix product. A simulator shortcut only: every query is still counted. Phases
        or losses that autograd is recording (the digital twin, calibration) are never
        memoized; the in-situ forward pass runs inside an autograd Function, with recording
        off, and is.
        """
        memo, losses = self._unitary_memo, self.insertion_losses
        if torch.is_grad_enabled() and (phases.requires_grad or losses.requires_grad):
            return self.unitary(phases)
        # The losses are part of the key: calibration changes them in place (hence _version).
        losses_key = (id(losses), losses._version)
        if (memo is not None and memo[0].dtype == phases.dtype and memo[2] == losses_key
                and memo[0].device == phases.device and torch.equal(memo[0], phases)):
            return memo[1]
        unitary = self.unitary(phases)
        self._unitary_memo = (phases.clone(), unitary, losses_key)
        return unitary

    def _uses_unitary(self, n_settings, batch):
        """Whether :meth:`propagate` goes through U (see there)."""
        return n_settings == 1 or batch > self.n_modes

    def _unitaries(self, phases):
        return self._memoized_unitary(phases) if len(phases) == 1 else self.unitary(phases)

    def propagate(self, field, phases):
        """Send complex fields (settings, batch, N) through the mesh at applied ``phases``:
        one setting through its memoized U, a batch wider than the mesh through U built per
        setting (cheaper than pushing every input through the columns), the rest column by
        column."""
        if self._uses_unitary(*field.shape[:2]):
            return field @ self._unitaries(phases).transpose(1, 2)
        return self._propagate(field, phases)

    def _transfer(self, x, phases):
        if self.output == "real" and self._uses_unitary(*x.shape[:2]):
            # x is real, so Re(U x) = Re(U) x: one real product, a quarter of the complex one.
            block = self._unitaries(phases)[:, :self.out_features, :self.in_features]
            return x @ block.real.transpose(1, 2)
        return self._detect(self.propagate(self._padded_field(x), phases)[:, :, :self.out_features])
