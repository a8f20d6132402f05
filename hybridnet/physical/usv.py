"""A general matrix in MZIs: ``U Sigma V``, two Clements meshes around a row of attenuators."""

import math

import torch

from .._random import spawn_seeds
from .mzi import MZIMesh
from .photonic import PhotonicDevice, chain_neighbours


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

    def _transfer(self, x, phases):
        v_phases, attenuation, modulation, u_phases = self._split(phases)
        k = self.n_modulators
        padded = torch.nn.functional.pad(x, (0, self.v_mesh.n_modes - self.in_features))
        field = self.v_mesh.propagate(
            padded.to(torch.promote_types(padded.dtype, torch.complex64)), v_phases)
        transmission = torch.sin(attenuation / 2)
        sigma = torch.complex(transmission * torch.cos(modulation),
                              transmission * torch.sin(modulation))
        field = field[..., :k] * sigma.unsqueeze(1)
        field = torch.nn.functional.pad(field, (0, self.u_mesh.n_modes - k))
        return self.u_mesh.propagate(field, u_phases)[:, :, :self.out_features].real
