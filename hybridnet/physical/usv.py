"""A general matrix in MZIs: ``U Sigma V``, two Clements meshes around a row of attenuators."""

import copy
import math

import torch

from .._random import spawn_seeds
from .mzi import MZIMesh
from .photonic import PhotonicDevice, chain_neighbours

# calibration_probes' stages. A mesh is fitted to its measured columns by L-BFGS for
# MESH_STAGE_ITER iterations, in rounds of FOLD_EVERY that each end by folding its phase offsets
# beyond pi/2 back by pi. A phase off by pi is the MZI with its outputs (theta) or inputs (phi)
# swapped, which the MZIs around it partly absorb: the unfolded fit (64 x 64 chip, 0.3 rad
# offsets, seed 1, U mesh) stalled at a misfit of 0.0025 after 1,000 iterations with a cluster of
# MZIs around two such phases, where the chip's own offsets give 0.0012 (detector noise); folded,
# it reached 0.0011 in 600, and both meshes of seeds 1 and 2 0.0010-0.0011. The modulators' fit
# settles in about 40 iterations.
MESH_STAGE_ITER = 600
FOLD_EVERY = 100
SIGMA_STAGE_ITER = 100


class USVMesh(PhotonicDevice):
    """General-matrix MZI device, ``y = Re(U Sigma V x)[:out_features]``.

    A unitary mesh alone realises only unitaries; real designs (ALGORITHMS.md section 1) reach
    any matrix, up to a scale, as its singular value decomposition: a Clements mesh V on
    ``N_in = in_features`` modes (rounded up to even), a column of ``k = min(N_in, N_out)``
    amplitude modulators Sigma, and a Clements mesh U on ``N_out = out_features`` modes
    (rounded up to even). Modulator j passes ``sin(a_j / 2) exp(i b_j)``: an attenuator
    (transmission in [-1, 1]) followed by a phase shifter, which also supplies the output phase
    screen the mesh V lacks. The first k modes of V reach the modulators; U's other inputs are
    dark.

    The parameters are V's phases (``N_in^2 - N_in``, in :class:`MZIMesh` order), then the k
    attenuator phases ``a``, then the k modulator phases ``b``, then U's phases
    (``N_out^2 - N_out``). Quantization, crosstalk, fabrication error and noise act on all of
    them; every MZI of both meshes has its own insertion loss.

    Parameters
    ----------
    in_features : int
        Input length n.
    out_features : int
        Output length m.
    insertion_loss, insertion_loss_std : float, default=0
        Mean and spread (dB) of the per-MZI loss of both meshes, see :class:`MZIMesh`.
    **options
        Non-idealities and seed, see :class:`~hybridnet.physical.photonic.PhotonicDevice`.

    Attributes
    ----------
    v_mesh, u_mesh : MZIMesh
        The two meshes (their insertion losses are part of the chip's hidden state; their other
        non-idealities are this device's).
    n_modulators : int
        k, the width of Sigma.

    Examples
    --------
    >>> import torch
    >>> from hybridnet.physical import USVMesh
    >>> device = USVMesh(6, 3, seed=0)
    >>> device.n_params  # 6 * 5 + 2 * 4 + 4 * 3
    50
    >>> device(torch.ones(2, 6), device.initial_params()).shape
    torch.Size([2, 3])
    """

    # Two MZI meshes: as MZIMesh.
    max_smoothing = 0.1

    def __init__(self, in_features, out_features, *, insertion_loss=0.0, insertion_loss_std=0.0,
                 **options):
        n_in, n_out = in_features + in_features % 2, out_features + out_features % 2
        n_modulators = min(n_in, n_out)
        n_params = (n_in * n_in - n_in) + 2 * n_modulators + (n_out * n_out - n_out)
        super().__init__(in_features, out_features, n_params, **options)
        seed_v, seed_u = spawn_seeds(self._chip_state_seed, 2)  # the meshes' losses
        losses = dict(insertion_loss=insertion_loss, insertion_loss_std=insertion_loss_std)
        self.v_mesh = MZIMesh(n_in, n_in, seed=seed_v, **losses)
        self.u_mesh = MZIMesh(n_out, n_out, seed=seed_u, **losses)
        self.insertion_loss = self.v_mesh.insertion_loss
        self.insertion_loss_std = self.v_mesh.insertion_loss_std
        self.n_modulators = n_modulators

    def _split(self, phases):
        """V's phases, the attenuator and modulator phases, U's phases."""
        k = self.n_modulators
        sizes = [self.v_mesh.n_params, k, k, self.u_mesh.n_params]
        return phases.split(sizes, dim=-1)

    def initial_params(self, generator=None):
        """Both meshes as :meth:`MZIMesh.initial_params`; attenuators ``a ~ U(pi/2, 3 pi/2)``
        (transmissions 0.71-1), modulator phases ``b ~ N(0, 1/sqrt(k))``."""
        v = self.v_mesh.initial_params(generator)
        k = self.n_modulators
        a = math.pi / 2 + math.pi * torch.rand(k, generator=generator)
        b = torch.randn(k, generator=generator) / math.sqrt(k)
        return torch.cat([v, a, b, self.u_mesh.initial_params(generator)])

    def heater_neighbours(self):
        """Each mesh's neighbours (:meth:`MZIMesh.heater_neighbours`), and within the column of
        modulators the attenuators of adjacent channels and their phase shifters; the three
        stages are far apart on the chip."""
        k, n_v = self.n_modulators, self.v_mesh.n_params
        return torch.cat([self.v_mesh.heater_neighbours(), chain_neighbours(k, n_v),
                          chain_neighbours(k, n_v + k),
                          self.u_mesh.heater_neighbours() + n_v + 2 * k])

    def nominal_twin(self):
        """A noise-free copy of the design with zero phase offsets and every MZI of both meshes
        at the nominal loss; see :meth:`PhotonicDevice.nominal_twin`."""
        twin = super().nominal_twin()
        twin.v_mesh = self.v_mesh.nominal_twin()
        twin.u_mesh = self.u_mesh.nominal_twin()
        twin.insertion_loss_std = 0.0
        return twin

    def calibration_buffers(self):
        """The phase offsets and the per-MZI losses of both meshes."""
        return ["fabrication_offsets", "v_mesh.insertion_losses", "u_mesh.insertion_losses"]

    def nonnegative_buffers(self):
        """The per-MZI losses of both meshes: an MZI cannot amplify."""
        return ["v_mesh.insertion_losses", "u_mesh.insertion_losses"]

    def calibration_probes(self, settings, generator=None):
        """Probes that measure U and V apart, and the staged fit they allow.

        :func:`hybridnet.calibrate` uses them (``strategy="auto"``): fitting both meshes at
        once to random queries stalls in local minima at 0.3 rad offsets on a 64 x 64 chip,
        while each mesh alone fits. The output is linear in ``x``, so ``in_features``
        orthogonal inputs read the real part of ``M = U Sigma V`` at a setting, and the same
        setting with every modulator phase ``b`` raised by pi/2 reads ``Re(i M) = -Im M``
        (the offset adds to the phase, so the shift is exact whatever it is; crosstalk, or a
        DAC too coarse for the shifts, makes it, and so the start, approximate, while the
        final fit uses the twin's whole model). Each setting is
        read so, then again with ``b_j`` raised by ``2 pi j / k``: ``M' = U Sigma D V`` with
        ``D = diag(exp(2 pi i j / k))`` known. Column j of U (its first ``out_features`` rows)
        is then the eigenvector of ``M' M^+`` with eigenvalue ``D_j``, and row j of V (its first
        ``in_features`` columns) that of ``M'^T (M^T)^+`` (Jennrich's algorithm), each up to a
        complex factor. The stages fit U's mesh to its columns and V's to its rows (phase
        offsets and losses, each up to those factors, in float32: a start needs no more),
        folding phase offsets beyond pi/2 back by pi every ``FOLD_EVERY`` iterations (a phase
        off by pi is the MZI with two ports swapped, a local minimum the fit does not leave
        alone), then the modulators' offsets with both meshes held. On the 64 x 64 chip of
        ``benchmarks/usv_calibration.py`` (chip seeds 0, 1, 2) calibrate's error on the
        calibration queries ended at 0.0098, 0.0117 and 0.0098 (0.0050, 0.0137 and 0.0047 at
        fresh settings); without the folds at 0.0099, 0.054 and 0.036 (0.0054, 0.10 and
        0.060).

        Parameters
        ----------
        settings : torch.Tensor
            (P, n_params) parameter settings to read the device at.
        generator : torch.Generator, optional
            Draws the orthogonal inputs.

        Returns
        -------
        tuple or None
            ``(inputs, probe_settings, stages)``: the inputs (4 P, in_features, in_features)
            to send at the settings (4 P, n_params), and ``stages(answers)``, which turns the
            device's answers into a list of ``(loss, max_iter, move)``: ``loss(values)``, a
            function of the values of :meth:`calibration_buffers` (a dict), to minimise in
            turn, and ``move(values)``, None or the values to go on from. None when
            a channel of Sigma is hidden: an odd ``in_features`` or ``out_features``, rounded
            up to even, can leave ``k`` above it.
        """
        k, n_in, n_out = self.n_modulators, self.in_features, self.out_features
        if k > min(n_in, n_out):
            return None
        n_v = self.v_mesh.n_params
        v_part, a_part, b_part = slice(0, n_v), slice(n_v, n_v + k), slice(n_v + k, n_v + 2 * k)
        u_part = slice(n_v + 2 * k, None)
        shifts = 2 * math.pi * torch.arange(k, dtype=settings.dtype, device=settings.device) / k
        probe_settings = []
        for shift in (0.0, math.pi / 2, shifts, shifts + math.pi / 2):
            shifted = settings.clone()
            shifted[:, b_part] += shift
            probe_settings.append(shifted)
        probe_settings = torch.cat(probe_settings)
        basis = torch.linalg.qr(torch.randn(n_in, n_in, generator=generator,
                                            dtype=settings.dtype))[0].to(settings.device)
        inputs = (math.sqrt(n_in) * basis).expand(len(probe_settings), n_in, n_in).contiguous()
        with torch.no_grad():  # the phases before the offsets: quantized, with crosstalk
            design = self.applied_phases(probe_settings) - self.fabrication_offsets
        design = design.float().unflatten(0, (4, -1))
        v_mesh, u_mesh = copy.deepcopy(self.v_mesh).float(), copy.deepcopy(self.u_mesh).float()

        def meshes(values):
            offsets = values["fabrication_offsets"].float()
            v_mesh.insertion_losses = values["v_mesh.insertion_losses"].float()
            u_mesh.insertion_losses = values["u_mesh.insertion_losses"].float()
            return (v_mesh.unitary(design[0, :, v_part] + offsets[v_part])[:, :k, :n_in],
                    u_mesh.unitary(design[0, :, u_part] + offsets[u_part])[:, :n_out, :k])

        def fold(part):
            def move(values):
                offsets = values["fabrication_offsets"].detach().clone()
                mesh = offsets[part]  # a view: folded in place
                mesh -= math.pi * mesh.sign() * (mesh.abs() > math.pi / 2)
                return {**values, "fabrication_offsets": offsets}
            return move

        def stages(answers):
            # Re M of every probe (out, in): the answers are x Re(M)^T for x = sqrt(n) basis.
            reads = (basis.T @ answers.to(basis) / math.sqrt(n_in)).mT.unflatten(0, (4, -1))
            matrix = torch.complex(reads[0], -reads[1]).to(torch.complex64)
            shifted = torch.complex(reads[2], -reads[3]).to(torch.complex64)
            pseudo_inverse = torch.linalg.pinv(matrix)
            eigenvalues = torch.polar(torch.ones_like(shifts), shifts).to(torch.complex64)
            u_columns = _eigenvectors(shifted @ pseudo_inverse, eigenvalues)
            v_rows = _eigenvectors(shifted.mT @ pseudo_inverse.mT, eigenvalues).mT

            def u_loss(values):
                return _span_misfit(meshes(values)[1], u_columns).double()

            def v_loss(values):
                return _span_misfit(meshes(values)[0].mT, v_rows.mT).double()

            def sigma_loss(values):
                with torch.no_grad():  # the meshes stay where their stages left them
                    v, u = meshes(values)
                offsets = values["fabrication_offsets"].float()
                transmission = torch.sin((design[0::2, :, a_part] + offsets[a_part]) / 2)
                phase = design[0::2, :, b_part] + offsets[b_part]
                sigma = torch.complex(transmission * torch.cos(phase),
                                      transmission * torch.sin(phase))
                predicted = (u * sigma.unsqueeze(-2)) @ v
                measured = torch.stack([matrix, shifted])
                return ((predicted - measured).abs().square().sum()
                        / measured.abs().square().sum()).double()

            rounds = MESH_STAGE_ITER // FOLD_EVERY
            return [*[(u_loss, FOLD_EVERY, fold(u_part))] * (rounds - 1),
                    (u_loss, FOLD_EVERY, None),
                    *[(v_loss, FOLD_EVERY, fold(v_part))] * (rounds - 1),
                    (v_loss, FOLD_EVERY, None), (sigma_loss, SIGMA_STAGE_ITER, None)]

        return inputs, probe_settings, stages

    def _site_layout(self):
        """V's MZIs, then one site per modulator (its attenuator and phase shifter, one column
        after V's), then U's MZIs; see :meth:`MZIMesh._site_layout`."""
        k, n_v = self.n_modulators, self.v_mesh.n_params
        v_sites, v_columns, v_phases = self.v_mesh._site_layout()
        modulator = torch.arange(k)
        n_v_sites, modulator_column = n_v // 2, self.v_mesh.n_modes
        u_sites, u_columns, u_phases = self.u_mesh._site_layout(
            phase_offset=n_v + 2 * k, site_offset=n_v_sites + k,
            column_offset=modulator_column + 1)
        return (torch.cat([v_sites, modulator + n_v_sites, modulator + n_v_sites, u_sites]),
                torch.cat([v_columns, torch.full((k,), modulator_column), u_columns]),
                torch.cat([v_phases, torch.stack([modulator, modulator + k], 1) + n_v,
                           u_phases]))

    def _site_blocks(self, sites, phases):
        """Transfers (Q, 2, 2) of sites ``sites`` at applied phases (Q, 2): a modulator's
        ``sin(a / 2) exp(i b)`` in the top left corner, zeros around it."""
        first_modulator = self.v_mesh.n_params // 2
        first_u = first_modulator + self.n_modulators
        in_v, in_u = sites < first_modulator, sites >= first_u
        modulator = ~(in_v | in_u)
        cdtype = torch.promote_types(phases.dtype, torch.complex64)
        blocks = phases.new_zeros((len(sites), 2, 2), dtype=cdtype)
        blocks[in_v] = self.v_mesh._site_blocks(sites[in_v], phases[in_v])
        blocks[in_u] = self.u_mesh._site_blocks(sites[in_u] - first_u, phases[in_u])
        blocks[modulator, 0, 0] = self._modulation(phases[modulator, 0], phases[modulator, 1])
        return blocks

    def _column_sites(self, x, reference):
        """The structure's tables at applied phases ``reference`` for inputs ``x``; see
        :meth:`MZIMesh._column_sites`."""
        v_phases, attenuation, modulation, u_phases = self._split(reference)
        k = self.n_modulators
        field = torch.nn.functional.pad(x, (0, self.v_mesh.n_modes - self.in_features))
        field = field.to(torch.promote_types(field.dtype, torch.complex64))
        v_fields, v_output = self.v_mesh._site_fields(field, v_phases)
        sigma = self._modulation(attenuation, modulation)
        u_input = torch.nn.functional.pad(v_output[:, :k] * sigma, (0, self.u_mesh.n_modes - k))
        u_fields, u_output = self.u_mesh._site_fields(u_input, u_phases)
        read_out = torch.eye(self.u_mesh.n_modes, dtype=field.dtype, device=field.device)
        u_suffix, u_rows = self.u_mesh._site_suffix(read_out[:self.out_features], u_phases)
        v_rows = torch.nn.functional.pad(u_rows[:, :k] * sigma,
                                         (0, self.v_mesh.n_modes - k))
        v_suffix, _ = self.v_mesh._site_suffix(v_rows, v_phases)

        def one_mode(values):  # (k, n) -> (k, n, 2) with a dark second mode
            return torch.stack([values, torch.zeros_like(values)], -1)

        fields = torch.cat([v_fields, one_mode(v_output[:, :k].T), u_fields])
        suffix = torch.cat([v_suffix, one_mode(u_rows[:, :k].T), u_suffix])
        return (fields, suffix, u_output[:, :self.out_features]), self._site_blocks

    @staticmethod
    def _modulation(attenuation, modulation):
        """Each modulator's transmission ``sin(a / 2) exp(i b)``."""
        transmission = torch.sin(attenuation / 2)
        return torch.complex(transmission * torch.cos(modulation),
                             transmission * torch.sin(modulation))

    @staticmethod
    def _detect(field):
        """The real part, read by coherent detection."""
        return field.real

    @staticmethod
    def _detects_real_part():
        return True

    def _transfer(self, x, phases):
        v_phases, attenuation, modulation, u_phases = self._split(phases)
        k = self.n_modulators
        n_settings, batch, _ = x.shape
        if (self.v_mesh._uses_unitary(n_settings, batch)
                and self.u_mesh._uses_unitary(n_settings, batch)):
            # M = U Sigma V from the meshes' unitaries; x is real, so Re(M x) = Re(M) x.
            v = self.v_mesh._unitaries(v_phases)[:, :k, :self.in_features]
            u = self.u_mesh._unitaries(u_phases)[:, :self.out_features, :k]
            matrix = (u * self._modulation(attenuation, modulation).unsqueeze(1)) @ v
            return x @ matrix.real.transpose(1, 2)
        padded = torch.nn.functional.pad(x, (0, self.v_mesh.n_modes - self.in_features))
        field = self.v_mesh.propagate(
            padded.to(torch.promote_types(padded.dtype, torch.complex64)), v_phases)
        field = field[..., :k] * self._modulation(attenuation, modulation).unsqueeze(1)
        field = torch.nn.functional.pad(field, (0, self.u_mesh.n_modes - k))
        return self.u_mesh.propagate(field, u_phases)[:, :, :self.out_features].real


def _eigenvectors(matrices, eigenvalues):
    """Columns: for each eigenvalue ``e_j``, the unit vector that ``matrices - e_j I`` shrinks
    most (its last right singular vector), a least-squares eigenvector under noise."""
    eye = torch.eye(matrices.shape[-1], dtype=matrices.dtype, device=matrices.device)
    shifted = matrices.unsqueeze(-3) - eigenvalues[:, None, None] * eye
    return torch.linalg.svd(shifted).Vh[..., -1, :].conj().mT


def _span_misfit(predicted, measured):
    """Relative squared distance of each measured column from the line of its predicted one:
    the columns are known up to a complex factor."""
    overlap = (predicted.conj() * measured).sum(-2)
    power = measured.abs().square().sum(-2)
    residual = power - overlap.abs().square() / predicted.abs().square().sum(-2)
    return residual.sum() / power.sum()
