"""The U Sigma V device against a numpy reference built from ALGORITHMS.md section 1."""

import math

import numpy as np
import pytest
import torch
from test_physical import ref_mzi, ref_mzi_pairs, ref_unitary, rng, t64

from hybridnet.physical import MZIMesh, USVMesh


def ref_usv(x, phases, n_in, n_out, losses_v=None, losses_u=None):
    """Re(U Sigma V x)[:m] with U, V the slow Clements products and Sigma = sin(a/2) e^{ib}."""
    modes_in, modes_out = n_in + n_in % 2, n_out + n_out % 2
    k = min(modes_in, modes_out)
    sizes = np.cumsum([modes_in * (modes_in - 1), k, k])
    v_phases, a, b, u_phases = np.split(np.asarray(phases, dtype=np.float64), sizes)
    v = ref_unitary(v_phases, modes_in, losses_v)
    u = ref_unitary(u_phases, modes_out, losses_u)
    sigma = np.diag(np.sin(a / 2) * np.exp(1j * b))
    matrix = u[:, :k] @ sigma @ v[:k, :]
    padded = np.zeros((len(x), modes_in))
    padded[:, :n_in] = x
    return (padded @ matrix.T)[:, :n_out].real


def test_two_by_two_by_hand():
    device = USVMesh(2, 2, seed=0)
    assert device.n_params == 2 + 4 + 2
    theta_v, phi_v, a, b, theta_u, phi_u = 0.4, 1.1, (2.0, 2.9), (0.3, -0.5), -0.7, 2.2
    params = [theta_v, phi_v, *a, *b, theta_u, phi_u]
    sigma = np.diag([np.sin(a[0] / 2) * np.exp(1j * b[0]), np.sin(a[1] / 2) * np.exp(1j * b[1])])
    matrix = (ref_mzi(theta_u, phi_u) @ sigma @ ref_mzi(theta_v, phi_v)).real
    np.testing.assert_allclose(device(t64(np.eye(2)), t64(params)).numpy(), matrix.T, atol=1e-12)


@pytest.mark.parametrize(("n_in", "n_out"), [(6, 3), (3, 6), (4, 4), (5, 5)])
@pytest.mark.parametrize("batch", [2, 9])  # column by column, and through U and V
def test_matches_reference_with_losses(n_in, n_out, batch):
    device = USVMesh(n_in, n_out, insertion_loss=0.2, insertion_loss_std=0.05, seed=1)
    g = rng(n_in + 10 * n_out)
    params = g.uniform(0, 2 * math.pi, (2, device.n_params))
    x = g.normal(size=(batch, n_in))
    losses_v = device.v_mesh.insertion_losses.double().numpy()
    losses_u = device.u_mesh.insertion_losses.double().numpy()
    y = device(t64(x), t64(params)).numpy()
    for k in range(2):
        np.testing.assert_allclose(
            y[k], ref_usv(x, params[k], n_in, n_out, losses_v, losses_u), atol=1e-10)
    np.testing.assert_allclose(device(t64(x), t64(params[1])).numpy(),
                               ref_usv(x, params[1], n_in, n_out, losses_v, losses_u), atol=1e-10)


def test_neighbours_stay_within_each_stage():
    device = USVMesh(4, 4)
    pairs = {tuple(pair) for pair in device.heater_neighbours().tolist()}
    mesh = set(ref_mzi_pairs(4))  # 12 phases per mesh, then 4 + 4 modulator phases
    expected = (mesh | {(12, 13), (13, 14), (14, 15), (16, 17), (17, 18), (18, 19)}
                | {(a + 20, b + 20) for a, b in mesh})
    assert pairs == expected


def test_realises_a_general_matrix_that_a_unitary_mesh_cannot():
    target = torch.randn(4, 4, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    target = 0.9 * target / torch.linalg.matrix_norm(target, 2)
    eye = torch.eye(4, dtype=torch.float64)
    errors = {}
    for make in (USVMesh, MZIMesh):
        device = make(4, 4, seed=0)
        params = device.initial_params(torch.Generator().manual_seed(0)).double()
        params.requires_grad_(True)
        optimizer = torch.optim.LBFGS([params], max_iter=300, line_search_fn="strong_wolfe")

        def closure(device=device, params=params, optimizer=optimizer):
            optimizer.zero_grad()
            loss = (device(eye, params).T - target).square().sum()
            loss.backward()
            return loss

        optimizer.step(closure)
        with torch.no_grad():
            errors[make] = float((device(eye, params).T - target).norm() / target.norm())
    assert errors[USVMesh] < 1e-3
    assert errors[MZIMesh] > 0.1  # the real part of a unitary is not a general matrix


def test_nominal_twin_zeroes_the_hidden_state_of_both_meshes():
    chip = USVMesh(4, 6, fabrication_error=0.1, insertion_loss=0.3, insertion_loss_std=0.1,
                   detector_noise=0.02, seed=3)
    twin = chip.nominal_twin()
    assert bool((twin.fabrication_offsets == 0).all())
    for mesh in (twin.v_mesh, twin.u_mesh):
        assert bool((mesh.insertion_losses == 0.3).all())
    assert bool((chip.u_mesh.insertion_losses != 0.3).any())
    assert twin.detector_noise == 0.0
    assert set(twin.calibration_buffers()) <= set(dict(twin.named_buffers()))
