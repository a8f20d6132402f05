"""Simulated physical layers and the black-box interface, against independent references.

Every expected value here is computed in numpy from the formulas of ALGORITHMS.md section 1 and
the documented parameter layouts, never by calling the code under test a second time.
"""

import math
import pickle

import numpy as np
import pytest
import torch

from hybridnet.physical import (
    SLM,
    BlackBoxError,
    FunctionBlackBox,
    MRRBank,
    MZIMesh,
    USVMesh,
    mzi,
)

TWO_PI = 2 * math.pi


# ----------------------------------------------------------------------------- references

def ref_mzi(theta, phi):
    """The 2x2 MZI transfer matrix of ALGORITHMS.md, complex128."""
    p1, p2 = (theta - phi) / 2, (theta + phi) / 2
    s1, c1, s2, c2 = np.sin(p1), np.cos(p1), np.sin(p2), np.cos(p2)
    return np.exp(1j * p2) / np.sqrt(2) * np.array([[s1 + 1j * s2, -c1 + 1j * c2],
                                                    [c1 + 1j * c2, s1 - 1j * s2]])


def ref_unitary(phases, n_modes, losses_db=None):
    """Clements mesh built the slow way: one embedded N x N matrix per MZI, applied in order,
    each MZI scaled by its amplitude transmission 10^(-loss/20)."""
    phases = np.asarray(phases, dtype=np.float64)
    n_mzi = n_modes * (n_modes - 1) // 2
    assert phases.shape == (2 * n_mzi,)
    thetas, phis = phases[:n_mzi], phases[n_mzi:]
    u = np.eye(n_modes, dtype=np.complex128)
    k = 0
    for _ in range(n_modes // 2):
        for first in (0, 1):  # even column on (0,1),(2,3)...; odd column on (1,2),(3,4)...
            for top in range(first, n_modes - 1, 2):
                e = np.eye(n_modes, dtype=np.complex128)
                amplitude = 1.0 if losses_db is None else 10 ** (-losses_db[k] / 20)
                e[top:top + 2, top:top + 2] = amplitude * ref_mzi(thetas[k], phis[k])
                u = e @ u
                k += 1
    assert k == n_mzi
    return u


def ref_mesh(x, phases, n_in, n_out, output="real", losses_db=None):
    """y = Re(U x_padded)[:m] (or |U x|^2) for x (batch, n), one phase vector."""
    n_modes = max(n_in, n_out)
    n_modes += n_modes % 2
    u = ref_unitary(phases, n_modes, losses_db)
    x = np.asarray(x, dtype=np.float64)
    padded = np.zeros((x.shape[0], n_modes))
    padded[:, :n_in] = x
    field = (padded @ u.T)[:, :n_out]
    return field.real if output == "real" else np.abs(field) ** 2


def ref_mrr_weight(phi, a=0.8, r=0.9):
    cos = np.cos(phi)
    t = np.sqrt((a * a + r * r - 2 * r * a * cos) / (1 + r * r * a * a - 2 * r * a * cos))
    return 2 * t - 1


def ref_slm(x, phases, n_in, n_out):
    w = np.cos(np.asarray(phases, dtype=np.float64).reshape(n_out, n_in))
    return np.asarray(x, dtype=np.float64) @ w.T / np.sqrt(n_in)


def ref_grid_pairs(rows, columns):
    """Heaters of a rows x columns grid (row by row) next to each other: left-right, up-down."""
    pairs = []
    for r in range(rows):
        for k in range(columns):
            if k + 1 < columns:
                pairs.append((r * columns + k, r * columns + k + 1))
            if r + 1 < rows:
                pairs.append((r * columns + k, (r + 1) * columns + k))
    return pairs


def ref_mzi_pairs(n_modes):
    """Vertically adjacent MZIs of each Clements column, for the thetas and for the phis."""
    n_mzi = n_modes * (n_modes - 1) // 2
    pairs, k = [], 0
    for _ in range(n_modes // 2):
        for first in (0, 1):
            column = list(range(k, k + len(range(first, n_modes - 1, 2))))
            pairs += [(a, a + 1) for a in column[:-1]]
            k += len(column)
    return pairs + [(a + n_mzi, b + n_mzi) for a, b in pairs]


def ref_crosstalk(phases, c, pairs):
    """phases + c * (adjacency of ``pairs``) (phases mod 2 pi), per setting: what leaks is the
    power of each neighbour's heater, which drives its phase wrapped to [0, 2 pi)."""
    phases = np.asarray(phases, dtype=np.float64)
    adjacency = np.zeros((phases.shape[-1], phases.shape[-1]))
    for a, b in pairs:
        adjacency[a, b] = adjacency[b, a] = 1
    return phases + c * np.mod(phases, TWO_PI) @ adjacency


def ref_quantize(phases, bits):
    step = TWO_PI / 2**bits
    return np.round(np.asarray(phases, dtype=np.float64) / step) * step


def n_modes_of(n_in, n_out):
    n = max(n_in, n_out)
    return n + n % 2


def rng(seed=0):
    return np.random.default_rng(seed)


def t64(array):
    return torch.as_tensor(np.asarray(array), dtype=torch.float64)


# ----------------------------------------------------------------------------- MZI mesh

@pytest.mark.parametrize(("n_in", "n_out"), [(5, 3), (3, 6), (6, 6), (2, 1), (7, 7)])
@pytest.mark.parametrize("batch_vs_modes", ["smaller", "larger"])
def test_mzi_matches_slow_clements_reference(n_in, n_out, batch_vs_modes):
    n_modes = n_modes_of(n_in, n_out)
    batch = max(1, n_modes - 1) if batch_vs_modes == "smaller" else n_modes + 3
    mesh = MZIMesh(n_in, n_out, seed=0)
    assert mesh.n_params == n_modes**2 - n_modes
    assert mesh.linear is True
    g = rng(n_in * 10 + n_out)
    params = g.uniform(-math.pi, 3 * math.pi, mesh.n_params)
    x = g.normal(size=(batch, n_in))
    y = mesh(t64(x), t64(params))
    assert y.dtype == torch.float64 and y.shape == (batch, n_out)
    np.testing.assert_allclose(y.numpy(), ref_mesh(x, params, n_in, n_out), atol=1e-10)


@pytest.mark.parametrize("batch", [2, 11])  # below and above N = 6
@pytest.mark.parametrize("shared_x", [False, True])
def test_mzi_several_settings_at_once(batch, shared_x):
    n_in, n_out, n_settings = 5, 3, 4
    mesh = MZIMesh(n_in, n_out, seed=0)
    g = rng(batch)
    params = g.uniform(0, TWO_PI, (n_settings, mesh.n_params))
    x = g.normal(size=(batch, n_in)) if shared_x else g.normal(size=(n_settings, batch, n_in))
    y = mesh(t64(x), t64(params))
    assert y.shape == (n_settings, batch, n_out)
    for k in range(n_settings):
        xk = x if shared_x else x[k]
        np.testing.assert_allclose(y[k].numpy(), ref_mesh(xk, params[k], n_in, n_out),
                                   atol=1e-10)


def test_mzi_float32_inputs_give_float32_close_to_reference():
    mesh = MZIMesh(4, 4, seed=0)
    g = rng(3)
    params = g.uniform(0, TWO_PI, mesh.n_params)
    for batch in (3, 9):
        x = g.normal(size=(batch, 4))
        y = mesh(torch.tensor(x, dtype=torch.float32), torch.tensor(params, dtype=torch.float32))
        assert y.dtype == torch.float32
        np.testing.assert_allclose(y.numpy(), ref_mesh(x, params, 4, 4), atol=2e-5)


def test_mzi_unitary_is_unitary_and_matches_reference():
    mesh = MZIMesh(6, 5, seed=0)
    g = rng(4)
    params = g.uniform(0, TWO_PI, (3, mesh.n_params))
    u = mesh.unitary(t64(params)).numpy()
    assert u.shape == (3, 6, 6)
    eye = np.eye(6)
    for k in range(3):
        np.testing.assert_allclose(u[k] @ u[k].conj().T, eye, atol=1e-12)
        ref = ref_unitary(params[k], 6)
        np.testing.assert_allclose(ref @ ref.conj().T, eye, atol=1e-12)
        np.testing.assert_allclose(u[k], ref, atol=1e-12)


@pytest.mark.parametrize(("limit", "value"), [("TREE_MAX_MODES", 4),
                                              ("TREE_MAX_ELEMENTS", 100)])
def test_mzi_unitary_of_a_wide_mesh_is_built_column_by_column(monkeypatch, limit, value):
    # Wide meshes, or too many settings at once, propagate the identity instead of a tree.
    mesh = MZIMesh(6, 6, seed=0)
    params = t64(rng(6).uniform(0, TWO_PI, (2, mesh.n_params)))
    tree = mesh.unitary(params)
    monkeypatch.setattr(mzi, limit, value)
    columns = mesh.unitary(params)
    torch.testing.assert_close(columns, tree)
    np.testing.assert_allclose(columns[1].numpy(), ref_unitary(params[1].numpy(), 6), atol=1e-12)


def test_mzi_real_output_is_linear_and_norm_bounded():
    mesh = MZIMesh(6, 6, seed=0)
    g = rng(5)
    params = t64(g.uniform(0, TWO_PI, mesh.n_params))
    x1, x2 = t64(g.normal(size=(3, 6))), t64(g.normal(size=(3, 6)))
    np.testing.assert_allclose(mesh(2 * x1 - 3 * x2, params).numpy(),
                               (2 * mesh(x1, params) - 3 * mesh(x2, params)).numpy(), atol=1e-12)
    # |Re(U x)| <= |U x| = |x| for a unitary U.
    assert bool((mesh(x1, params).norm(dim=1) <= x1.norm(dim=1) + 1e-12).all())


@pytest.mark.parametrize("batch", [3, 10])
def test_mzi_intensity_output(batch):
    mesh = MZIMesh(3, 4, output="intensity", seed=0)
    assert mesh.linear is False
    g = rng(6)
    params = g.uniform(0, TWO_PI, mesh.n_params)
    x = g.normal(size=(batch, 3))
    y = mesh(t64(x), t64(params)).numpy()
    np.testing.assert_allclose(y, ref_mesh(x, params, 3, 4, output="intensity"), atol=1e-10)
    assert (y >= 0).all()
    # All modes kept: a unitary conserves power.
    full = MZIMesh(4, 4, output="intensity", seed=0)
    y_full = full(t64(x @ np.eye(3, 4)), t64(params)).numpy()
    np.testing.assert_allclose(y_full.sum(axis=1), (x**2).sum(axis=1), rtol=1e-10)


def test_mzi_rejects_unknown_output():
    with pytest.raises(ValueError, match="output must be one of"):
        MZIMesh(3, 3, output="phase")


def test_mzi_initial_params_distribution():
    mesh = MZIMesh(20, 20, seed=0)  # N = 20, 380 phases
    p = mesh.initial_params(torch.Generator().manual_seed(1))
    assert p.shape == (380,)
    assert abs(float(p.mean()) - math.pi / 2) < 0.05
    assert float(p.std()) == pytest.approx(1 / math.sqrt(20), rel=0.15)
    again = mesh.initial_params(torch.Generator().manual_seed(1))
    assert torch.equal(p, again)


# ----------------------------------------------------------------------------- MRR and SLM

def test_mrr_matches_formula_for_several_settings():
    n_in, n_out = 4, 3
    bank = MRRBank(n_in, n_out, seed=0)
    assert bank.n_params == 12 and bank.linear is True
    g = rng(7)
    params = g.uniform(-1, 4, (2, 12))
    x = g.normal(size=(5, n_in))
    y = bank(t64(x), t64(params)).numpy()
    for k in range(2):
        a = ref_mrr_weight(params[k]).reshape(n_out, n_in)  # row by row
        np.testing.assert_allclose(y[k], x @ a.T, atol=1e-12)


def test_mrr_custom_loss_and_coupling_and_validation():
    bank = MRRBank(2, 2, loss=0.6, coupling=0.7, seed=0)
    params = np.array([0.1, 0.5, 1.0, 2.0])
    y = bank(t64(np.eye(2)), t64(params)).numpy()  # rows are the columns of A
    np.testing.assert_allclose(y.T, ref_mrr_weight(params, a=0.6, r=0.7).reshape(2, 2),
                               atol=1e-12)
    for bad in (0.0, 1.0, 1.5, -0.2):
        with pytest.raises(ValueError, match="loss must lie in"):
            MRRBank(2, 2, loss=bad)
        with pytest.raises(ValueError, match="coupling must lie in"):
            MRRBank(2, 2, coupling=bad)


def test_mrr_weight_range():
    bank = MRRBank(1, 1, seed=0)
    phis = np.linspace(0, TWO_PI, 2001)
    weights = bank(t64(np.ones((1, 1))), t64(phis[:, None]))[:, 0, 0].numpy()
    assert weights.min() == pytest.approx(-0.2857, abs=1e-3)  # 2 |a - r| / (1 - a r) - 1
    assert weights.max() == pytest.approx(0.9767, abs=1e-3)  # 2 (a + r) / (1 + a r) - 1
    assert weights.min() == pytest.approx(2 * 0.1 / 0.28 - 1, abs=1e-9)
    assert weights.max() == pytest.approx(2 * 1.7 / 1.72 - 1, abs=1e-9)


def test_mrr_initial_params_range():
    bank = MRRBank(20, 20, seed=0)
    p = bank.initial_params(torch.Generator().manual_seed(0))
    assert p.shape == (400,)
    assert float(p.min()) >= 0.01 and float(p.max()) <= math.pi / 4
    assert float(p.min()) < 0.05 and float(p.max()) > math.pi / 4 - 0.04  # fills the range


@pytest.mark.parametrize("batch", [1, 6])
def test_slm_matches_formula(batch):
    n_in, n_out = 5, 3
    slm = SLM(n_in, n_out, seed=0)
    assert slm.n_params == 15 and slm.linear is True
    g = rng(8)
    params = g.uniform(0, TWO_PI, (3, 15))
    x = g.normal(size=(3, batch, n_in))
    y = slm(t64(x), t64(params)).numpy()
    for k in range(3):
        np.testing.assert_allclose(y[k], ref_slm(x[k], params[k], n_in, n_out), atol=1e-12)
    single = slm(t64(x[0]), t64(params[0])).numpy()
    assert single.shape == (batch, n_out)
    np.testing.assert_allclose(single, y[0], atol=1e-12)


def test_slm_initial_params_range():
    slm = SLM(20, 20, seed=0)
    p = slm.initial_params(torch.Generator().manual_seed(0))
    assert p.shape == (400,)
    assert float(p.min()) >= math.pi / 2 - 1 and float(p.max()) <= math.pi / 2 + 1
    assert float(p.max() - p.min()) > 1.9
    # cos(pi/2 + u), u ~ U(-1, 1): mean 0, variance 1/2 - sin(2)/4 = 0.273.
    weights = torch.cos(p)
    assert abs(float(weights.mean())) < 0.1
    assert float(weights.var()) == pytest.approx(0.5 - math.sin(2) / 4, abs=0.05)


# ----------------------------------------------------------------------------- non-idealities

@pytest.mark.parametrize("bits", [1, 3, 6])
def test_phase_bits_quantise_slm(bits):
    slm = SLM(4, 3, phase_bits=bits, seed=0)
    g = rng(bits)
    params = g.uniform(-2, 8, (2, 12))
    x = g.normal(size=(5, 4))
    y = slm(t64(x), t64(params)).numpy()
    for k in range(2):
        expected = ref_slm(x, ref_quantize(params[k], bits), 4, 3)
        np.testing.assert_allclose(y[k], expected, atol=1e-12)
        # and not the continuous model
        assert not np.allclose(y[k], ref_slm(x, params[k], 4, 3), atol=1e-6)


def test_phase_bits_output_is_piecewise_constant():
    bits = 4
    step = TWO_PI / 2**bits
    slm = SLM(3, 2, phase_bits=bits, seed=0)
    centers = step * rng(9).integers(-20, 20, 6).astype(np.float64)
    x = t64(rng(10).normal(size=(4, 3)))
    base = slm(x, t64(centers))
    for shift in (-0.45 * step, -0.2 * step, 0.3 * step, 0.45 * step):
        assert torch.equal(slm(x, t64(centers + shift)), base)


def test_phase_bits_quantise_mzi():
    bits = 3
    mesh = MZIMesh(5, 3, phase_bits=bits, seed=0)
    g = rng(11)
    params = g.uniform(0, TWO_PI, mesh.n_params)
    x = g.normal(size=(9, 5))
    y = mesh(t64(x), t64(params)).numpy()
    np.testing.assert_allclose(y, ref_mesh(x, ref_quantize(params, bits), 5, 3), atol=1e-10)


def test_crosstalk_slm_per_setting():
    c = 0.07
    slm = SLM(4, 3, crosstalk=c, seed=0)
    g = rng(12)
    params = g.uniform(-TWO_PI, 2 * TWO_PI, (3, 12))  # beyond one period too
    x = g.normal(size=(6, 4))
    y = slm(t64(x), t64(params)).numpy()
    for k in range(3):  # leaks only between neighbours of the same setting
        expected = ref_slm(x, ref_crosstalk(params[k], c, ref_grid_pairs(3, 4)), 4, 3)
        np.testing.assert_allclose(y[k], expected, atol=1e-12)


def test_crosstalk_single_heater_leaks_into_both_neighbours_only():
    c = 0.1
    slm = SLM(5, 1, crosstalk=c, seed=0)
    params = np.full(5, math.pi / 2)
    params[2] += 1.0  # phases: pi/2 everywhere, pi/2 + 1 at heater 2
    y = slm(t64(np.eye(5) * np.sqrt(5)), t64(params)).numpy()[:, 0]  # y_j = cos(phi_eff_j)
    eff = params + c * np.array([params[1], params[0] + params[2], params[1] + params[3],
                                 params[2] + params[4], params[3]])
    np.testing.assert_allclose(y, np.cos(eff), atol=1e-12)


def test_crosstalk_mzi():
    c = 0.05
    mesh = MZIMesh(4, 4, crosstalk=c, seed=0)
    g = rng(13)
    params = g.uniform(-TWO_PI, 2 * TWO_PI, mesh.n_params)
    x = g.normal(size=(3, 4))
    y = mesh(t64(x), t64(params)).numpy()
    np.testing.assert_allclose(y, ref_mesh(x, ref_crosstalk(params, c, ref_mzi_pairs(4)), 4, 4),
                               atol=1e-10)


def test_insertion_loss_of_one_mzi_scales_its_transfer_matrix():
    mesh = MZIMesh(2, 2, insertion_loss=0.5, seed=0)
    theta, phi = 0.7, -1.3
    x = np.eye(2)
    y = mesh(t64(x), t64([theta, phi])).numpy()
    np.testing.assert_allclose(y, (10 ** (-0.5 / 20) * ref_mzi(theta, phi)).real.T, atol=1e-12)


@pytest.mark.parametrize("batch", [3, 9])  # column by column, and through U
def test_insertion_losses_per_mzi_match_reference(batch):
    mesh = MZIMesh(5, 6, insertion_loss=0.3, insertion_loss_std=0.1, seed=4)
    losses = mesh.insertion_losses.double().numpy()
    assert losses.shape == (15,) and (losses >= 0).all() and np.ptp(losses) > 0
    g = rng(22)
    params = g.uniform(0, TWO_PI, (2, mesh.n_params))
    x = g.normal(size=(batch, 5))
    y = mesh(t64(x), t64(params)).numpy()
    for k in range(2):
        np.testing.assert_allclose(y[k], ref_mesh(x, params[k], 5, 6, losses_db=losses),
                                   atol=1e-10)
    # one setting (the memoized U) as well
    np.testing.assert_allclose(mesh(t64(x), t64(params[0])).numpy(),
                               ref_mesh(x, params[0], 5, 6, losses_db=losses), atol=1e-10)


def test_losses_leave_the_phase_offsets_unchanged_and_the_twin_is_nominal():
    lossless = MZIMesh(6, 6, fabrication_error=0.2, seed=7)
    lossy = MZIMesh(6, 6, fabrication_error=0.2, insertion_loss=0.2, insertion_loss_std=0.05,
                    detector_noise=0.01, seed=7)
    assert torch.equal(lossless.fabrication_offsets, lossy.fabrication_offsets)
    twin = lossy.nominal_twin()
    assert bool((twin.fabrication_offsets == 0).all())
    assert bool((twin.insertion_losses == 0.2).all())
    assert (twin.detector_noise, twin.fabrication_error, twin.crosstalk) == (0.0, 0.0, 0.0)
    assert bool((lossy.insertion_losses != 0.2).any())  # the chip keeps its own state


@pytest.mark.parametrize(("make", "expected"), [
    # 4 modes: columns {0, 1}, {2}, {3, 4}, {5} of MZIs; the phis follow at 6..11.
    (lambda: MZIMesh(4, 4), [(0, 1), (3, 4), (6, 7), (9, 10)]),
    # 2 x 3 grid 0 1 2 / 3 4 5: no leak from 2 into 3 across the row's end.
    (lambda: MRRBank(3, 2), [(0, 1), (1, 2), (3, 4), (4, 5), (0, 3), (1, 4), (2, 5)]),
    (lambda: SLM(3, 2), [(0, 1), (1, 2), (3, 4), (4, 5), (0, 3), (1, 4), (2, 5)]),
])
def test_heater_neighbours_follow_the_layout(make, expected):
    pairs = {tuple(sorted(pair)) for pair in make().heater_neighbours().tolist()}
    assert pairs == set(expected)


@pytest.mark.parametrize("n_modes", [2, 6, 8])
def test_mzi_neighbours_match_the_column_reference(n_modes):
    pairs = {tuple(pair) for pair in MZIMesh(n_modes, n_modes).heater_neighbours().tolist()}
    assert pairs == set(ref_mzi_pairs(n_modes))


def test_crosstalk_mrr_grid_matches_reference():
    c = 0.08
    bank = MRRBank(4, 3, crosstalk=c, seed=0)
    g = rng(21)
    params = g.uniform(-1, 1, 12)  # a detuning below 0 is heated most of a period
    x = g.normal(size=(5, 4))
    weights = ref_mrr_weight(ref_crosstalk(params, c, ref_grid_pairs(3, 4))).reshape(3, 4)
    np.testing.assert_allclose(bank(t64(x), t64(params)).numpy(), x @ weights.T, atol=1e-12)


# The response of every phase repeats every 2 pi, but the attenuators of USVMesh pass
# sin(a / 2): period 4 pi.
PERIODIC_DEVICES = {
    "mzi": (lambda **options: MZIMesh(4, 4, **options), None),
    "usv": (lambda **options: USVMesh(4, 3, **options), slice(12, 16)),
    "mrr": (lambda **options: MRRBank(3, 2, **options), None),
    "slm": (lambda **options: SLM(3, 2, **options), None),
}


@pytest.mark.parametrize("kind", sorted(PERIODIC_DEVICES))
def test_crosstalk_leaves_a_phase_moved_by_a_period_unchanged(kind):
    make, four_pi = PERIODIC_DEVICES[kind]
    device = make(crosstalk=0.1, phase_bits=10, seed=0)
    period = torch.full((device.n_params,), TWO_PI, dtype=torch.float64)
    if four_pi is not None:
        period[four_pi] = 2 * TWO_PI
    g = rng(23)
    params = t64(g.uniform(0, TWO_PI, device.n_params))
    x = t64(g.normal(size=(5, device.in_features)))
    y = device(x, params)
    # one phase at a time, by -1 and +2 periods, and every phase at once
    moved = [params + k * torch.eye(device.n_params, dtype=torch.float64)[j] * period
             for j in range(device.n_params) for k in (-1, 2)]
    moved.append(params + t64(g.integers(-2, 3, device.n_params)) * period)
    for other in moved:
        np.testing.assert_allclose(device(x, other).numpy(), y.numpy(), rtol=0, atol=1e-10)


@pytest.mark.parametrize("kind", sorted(PERIODIC_DEVICES))
def test_crosstalk_gradient_matches_finite_differences(kind):
    # The leak goes through phases mod 2 pi, whose derivative is 1 away from the wrap points;
    # the phases stay clear of them here.
    device = PERIODIC_DEVICES[kind][0](crosstalk=0.1, seed=0).double()
    g = rng(24)
    params = t64(g.uniform(0.5, TWO_PI - 0.5, device.n_params)) + TWO_PI * t64(
        g.integers(-1, 2, device.n_params))
    x = t64(g.normal(size=(3, device.in_features)))
    assert torch.autograd.gradcheck(lambda p: device(x, p), params.requires_grad_(True))


def test_quantise_then_crosstalk_then_fabrication_order():
    bits, c = 4, 0.05
    slm = SLM(4, 3, phase_bits=bits, crosstalk=c, fabrication_error=0.1, seed=2)
    offsets = slm.fabrication_offsets.double().numpy()
    g = rng(14)
    params = g.uniform(0, TWO_PI, 12)
    x = g.normal(size=(5, 4))
    applied = ref_crosstalk(ref_quantize(params, bits), c, ref_grid_pairs(3, 4)) + offsets
    expected = ref_slm(x, applied, 4, 3)
    np.testing.assert_allclose(slm(t64(x), t64(params)).numpy(), expected, atol=1e-6)


def _slm_phase_probe(slm, n_settings=1):
    """Recover applied phase offsets from outputs: at W = pi/2, y = cos(pi/2 + o) = -sin(o)."""
    n = slm.in_features
    x = t64(np.eye(n) * np.sqrt(n))
    params = torch.full((n_settings, slm.n_params), math.pi / 2, dtype=torch.float64)
    y = slm(x, params).numpy()  # (settings, n, m): y[k, j, i] = cos(phase[k, i, j])
    return -np.arcsin(np.clip(y.transpose(0, 2, 1).reshape(n_settings, -1), -1, 1))


def test_fabrication_error_static_seeded_and_sized():
    std = 0.05
    slm = SLM(20, 20, fabrication_error=std, seed=0)
    first, second = _slm_phase_probe(slm, 2), _slm_phase_probe(slm)
    np.testing.assert_array_equal(first[0], first[1])  # same offsets for every setting
    np.testing.assert_array_equal(first[0], second[0])  # and every call
    assert np.std(first[0]) == pytest.approx(std, rel=0.2)
    assert abs(np.mean(first[0])) < 3 * std / math.sqrt(400) + 1e-3
    np.testing.assert_allclose(first[0], slm.fabrication_offsets.double().numpy(), atol=1e-6)
    same = _slm_phase_probe(SLM(20, 20, fabrication_error=std, seed=0))
    np.testing.assert_array_equal(same, second)
    other = _slm_phase_probe(SLM(20, 20, fabrication_error=std, seed=1))
    assert np.abs(other - second).max() > 1e-2
    # It changes what the device computes relative to the nominal model.
    ideal = _slm_phase_probe(SLM(20, 20, seed=0))
    np.testing.assert_allclose(ideal, 0, atol=1e-12)


def test_fabrication_error_mzi_reference():
    mesh = MZIMesh(3, 3, fabrication_error=0.2, seed=5)
    offsets = mesh.fabrication_offsets.double().numpy()
    assert offsets.shape == (mesh.n_params,) and np.abs(offsets).max() > 0
    g = rng(15)
    params = g.uniform(0, TWO_PI, mesh.n_params)
    x = g.normal(size=(2, 3))
    y = mesh(t64(x), t64(params)).numpy()
    np.testing.assert_allclose(y, ref_mesh(x, params + offsets, 3, 3), atol=1e-6)
    assert not np.allclose(y, ref_mesh(x, params, 3, 3), atol=1e-3)


def test_phase_noise_fresh_each_call_reproducible_and_sized():
    std = 0.03
    slm = SLM(20, 10, phase_noise=std, seed=0)
    a, b = _slm_phase_probe(slm), _slm_phase_probe(slm)
    assert np.abs(a - b).min() > 0  # every phase redrawn
    assert np.std(a) == pytest.approx(std, rel=0.2)
    twin = SLM(20, 10, phase_noise=std, seed=0)
    np.testing.assert_array_equal(_slm_phase_probe(twin), a)
    np.testing.assert_array_equal(_slm_phase_probe(twin), b)
    several = _slm_phase_probe(slm, 3)
    assert np.abs(several[0] - several[1]).min() > 0  # independent per setting


def test_phase_noise_mzi_repeated_queries_differ():
    mesh = MZIMesh(4, 4, phase_noise=0.01, seed=0)
    x = torch.randn(3, 4, generator=torch.Generator().manual_seed(0))
    params = mesh.initial_params(torch.Generator().manual_seed(0))
    y1, y2 = mesh(x, params), mesh(x, params)
    assert not torch.equal(y1, y2)
    assert float((y1 - y2).abs().max()) < 0.2


def test_detector_noise_spread_is_relative():
    s = 0.05
    slm = SLM(6, 20, detector_noise=s, seed=0)
    g = rng(16)
    params = g.uniform(0, TWO_PI, slm.n_params)
    x = g.normal(size=(60, 6))
    ideal = ref_slm(x, params, 6, 20)
    y1 = slm(t64(x), t64(params)).numpy()
    y2 = slm(t64(x), t64(params)).numpy()
    assert np.abs(y1 - y2).min() > 0
    rel = (y1 - ideal) / np.abs(ideal)
    assert np.std(rel) == pytest.approx(s, rel=0.1)
    assert abs(np.mean(rel)) < 4 * s / math.sqrt(rel.size)
    # Multiplicative: a zero output stays exactly zero.
    zero = slm(t64(np.zeros((4, 6))), t64(params)).numpy()
    np.testing.assert_array_equal(zero, 0)
    twin = SLM(6, 20, detector_noise=s, seed=0)
    np.testing.assert_array_equal(twin(t64(x), t64(params)).numpy(), y1)


def test_noise_free_device_is_deterministic():
    mesh = MZIMesh(5, 3, phase_bits=5, crosstalk=0.02, fabrication_error=0.1, seed=1)
    x = torch.randn(4, 5, generator=torch.Generator().manual_seed(0))
    params = mesh.initial_params(torch.Generator().manual_seed(0))
    assert torch.equal(mesh(x, params), mesh(x, params))


@pytest.mark.parametrize(("option", "bad"), [
    ("phase_noise", -0.1), ("crosstalk", -1), ("detector_noise", "0.1"),
    ("fabrication_error", float("nan")), ("phase_noise", True)])
def test_nonideality_validation(option, bad):
    with pytest.raises(ValueError, match=f"{option} must be a finite non-negative number"):
        SLM(3, 3, **{option: bad})


def test_infinite_noise_rejected_at_construction():
    with pytest.raises(ValueError, match="phase_noise"):
        SLM(3, 3, phase_noise=float("inf"))


@pytest.mark.parametrize("bad", [0, -2, 2.0, True])
def test_phase_bits_validation(bad):
    with pytest.raises(ValueError, match="phase_bits must be a positive int"):
        MZIMesh(3, 3, phase_bits=bad)


def test_straight_through_gradient_with_phase_bits():
    bits = 3
    slm = SLM(4, 3, phase_bits=bits, seed=0)
    g = rng(17)
    params_np = g.uniform(0, TWO_PI, 12)
    x = g.normal(size=(5, 4))
    params = t64(params_np).requires_grad_(True)
    slm(t64(x), params).sum().backward()
    assert params.grad is not None and float(params.grad.abs().sum()) > 0
    # d/dW_ij sum_b cos(q(W_ij)) x_bj / 2 = -sin(q(W_ij)) sum_b x_bj / 2 (straight-through)
    q = ref_quantize(params_np, bits).reshape(3, 4)
    expected = -np.sin(q) * x.sum(axis=0)[None, :] / 2
    np.testing.assert_allclose(params.grad.numpy().reshape(3, 4), expected, atol=1e-12)

    mesh = MZIMesh(4, 4, phase_bits=bits, crosstalk=0.02, seed=0)
    phases = mesh.initial_params(torch.Generator().manual_seed(0)).double().requires_grad_(True)
    mesh(t64(x), phases).pow(2).sum().backward()
    assert phases.grad is not None and bool(torch.isfinite(phases.grad).all())
    assert float(phases.grad.abs().sum()) > 0


# ----------------------------------------------------------------------------- counters

@pytest.mark.parametrize("make", [lambda: SLM(4, 3, seed=0), lambda: MRRBank(4, 3, seed=0),
                                  lambda: MZIMesh(4, 3, phase_noise=0.01, seed=0)])
def test_counters_simulated_devices(make):
    box = make()
    assert (box.n_queries, box.n_calls) == (0, 0)
    params = box.initial_params(torch.Generator().manual_seed(0))
    box(torch.zeros(5, 4), params)
    assert (box.n_queries, box.n_calls) == (5, 1)
    box(torch.zeros(7, 4), params.expand(3, -1))
    assert (box.n_queries, box.n_calls) == (5 + 21, 2)
    box(torch.zeros(3, 2, 4), params.expand(3, -1))
    assert (box.n_queries, box.n_calls) == (26 + 6, 3)
    box.reset_counters()
    assert (box.n_queries, box.n_calls) == (0, 0)
    box(torch.zeros(1, 4), params)
    assert (box.n_queries, box.n_calls) == (1, 1)


def test_counters_not_incremented_by_rejected_shapes():
    slm = SLM(4, 3, seed=0)
    with pytest.raises(ValueError):
        slm(torch.zeros(2, 5), torch.zeros(12))
    assert (slm.n_queries, slm.n_calls) == (0, 0)


@pytest.mark.parametrize("batched", [False, True])
def test_counters_function_black_box(batched):
    invocations = []

    def driver(x, params):
        invocations.append(tuple(x.shape))
        return x @ params.reshape(-1, 4, 2) if batched else x @ params.reshape(4, 2)

    box = FunctionBlackBox(driver, 4, 2, np.zeros(8), batched=batched)
    params = torch.randn(3, 8, dtype=torch.float64)
    box(torch.randn(5, 4, dtype=torch.float64), params)
    assert box.n_queries == 15
    assert box.n_calls == (1 if batched else 3)
    assert len(invocations) == box.n_calls
    box(torch.randn(2, 4), torch.zeros(8))
    assert box.n_queries == 17
    assert box.n_calls == (2 if batched else 4)
    assert len(invocations) == box.n_calls
    box.reset_counters()
    assert (box.n_queries, box.n_calls) == (0, 0)


def test_a_request_that_fails_midway_counts_the_calls_it_made():
    asked = []

    def driver(x, params):  # one setting at a time; the third fails
        asked.append(len(x))
        if len(asked) == 3:
            raise OSError("frame dropped")
        return x

    box = FunctionBlackBox(driver, 2, 2, np.zeros(1))
    assert box.settings_per_call == 1
    with pytest.raises(BlackBoxError, match="frame dropped"):
        box(torch.zeros(5, 2), torch.zeros(4, 1))
    assert asked == [5, 5, 5]  # the fourth setting was never asked for
    assert (box.n_calls, box.n_queries) == (3, 15)


# ----------------------------------------------------------------------------- FunctionBlackBox

def torch_device(x, params):
    return torch.tanh(x @ params.reshape(3, 4).T) ** 2


def numpy_device(x, params):
    assert isinstance(x, np.ndarray) and isinstance(params, np.ndarray)
    assert x.dtype == np.float64 and params.dtype == np.float64
    return np.tanh(x @ params.reshape(3, 4).T) ** 2


def numpy_batched(x, params):
    assert x.ndim == 3 and params.ndim == 2
    return np.tanh(np.einsum("pbn,pmn->pbm", x, params.reshape(-1, 3, 4))) ** 2


def test_function_black_box_backends_agree():
    init = rng(18).normal(size=12)
    by_torch = FunctionBlackBox(torch_device, 4, 3, init, linear=False)
    by_numpy = FunctionBlackBox(numpy_device, 4, 3, init, backend="numpy", linear=False)
    batched = FunctionBlackBox(numpy_batched, 4, 3, init, backend="numpy", batched=True)
    assert by_torch.differentiable is True
    assert by_numpy.differentiable is False and batched.differentiable is False
    assert by_torch.linear is False and batched.linear is None
    assert by_torch.n_params == 12 and by_torch.name == "torch_device"
    np.testing.assert_allclose(by_numpy.initial_params().numpy(), init, rtol=1e-6)
    g = rng(19)
    x = g.normal(size=(2, 6, 4))
    params = g.normal(size=(2, 12))
    expected = np.stack([np.tanh(x[k] @ params[k].reshape(3, 4).T) ** 2 for k in range(2)])
    for box in (by_torch, by_numpy, batched):
        y = box(t64(x), t64(params))
        assert y.dtype == torch.float64 and y.shape == (2, 6, 3)
        np.testing.assert_allclose(y.numpy(), expected, atol=1e-12)
    y32 = by_numpy(torch.tensor(x[0], dtype=torch.float32),
                   torch.tensor(params[0], dtype=torch.float32))
    assert y32.dtype == torch.float32
    np.testing.assert_allclose(y32.numpy(), expected[0], atol=1e-5)


def test_function_black_box_torch_backend_differentiable():
    box = FunctionBlackBox(torch_device, 4, 3, np.zeros(12))
    params = torch.randn(12, dtype=torch.float64, requires_grad=True)
    box(torch.randn(5, 4, dtype=torch.float64), params).sum().backward()
    assert params.grad is not None and float(params.grad.abs().sum()) > 0


def test_function_black_box_accepts_lists():
    box = FunctionBlackBox(lambda x, p: x.tolist(), 2, 2, [0.0], backend="numpy")
    assert box.name == "<lambda>"
    np.testing.assert_allclose(box(t64([[1.0, 2.0]]), t64([0.0])).numpy(), [[1.0, 2.0]])


def test_function_black_box_initial_params_is_a_copy():
    box = FunctionBlackBox(torch_device, 4, 3, np.arange(12.0))
    p = box.initial_params()
    p += 1
    np.testing.assert_array_equal(box.initial_params().numpy(), np.arange(12.0))


def test_function_black_box_wraps_exceptions():
    def flaky_driver(x, params):
        raise ZeroDivisionError("laser tripped")

    box = FunctionBlackBox(flaky_driver, 2, 2, [0.0])
    with pytest.raises(BlackBoxError, match="flaky_driver raised ZeroDivisionError: laser "
                                            "tripped") as info:
        box(torch.zeros(1, 2), torch.zeros(1))
    assert isinstance(info.value.__cause__, ZeroDivisionError)
    named = FunctionBlackBox(flaky_driver, 2, 2, [0.0], name="layer7", batched=True)
    with pytest.raises(BlackBoxError, match="layer7 raised ZeroDivisionError"):
        named(torch.zeros(1, 2), torch.zeros(1))


@pytest.mark.parametrize("batched", [False, True])
@pytest.mark.parametrize(("output", "message"), [
    (lambda x: x * np.nan, r"layer3 returned 4 NaN and 0 infinite values out of 4"),
    (lambda x: np.where(x > 0, np.inf, -np.inf), r"layer3 returned 0 NaN and 4 infinite"),
    (lambda x: x[..., :1], r"layer3 returned shape .*expected"),
    (lambda x: np.zeros(x.shape[:-1] + (3,)), r"layer3 returned shape .*expected"),
    (lambda x: object(), r"layer3 returned object, which is not a numeric array"),
    (lambda x: "abc", r"layer3 returned str, which is not a numeric array"),
])
def test_function_black_box_bad_outputs(batched, output, message):
    box = FunctionBlackBox(lambda x, p: output(x), 2, 2, [0.0], backend="numpy",
                           batched=batched, name="layer3")
    with pytest.raises(BlackBoxError, match=message):
        box(torch.ones(2, 2), torch.zeros(1))


def test_function_black_box_bad_output_in_one_setting_only():
    def sometimes_nan(x, params):
        return x * (np.nan if params[0] > 0 else 1.0)

    box = FunctionBlackBox(sometimes_nan, 2, 2, [0.0], backend="numpy")
    params = torch.tensor([[-1.0], [1.0], [-1.0]])
    with pytest.raises(BlackBoxError, match="sometimes_nan returned 4 NaN"):
        box(torch.ones(2, 2), params)


@pytest.mark.parametrize(("args", "kwargs", "error", "message"), [
    ((3, 2, 2, [0.0]), {}, TypeError, "fn must be callable"),
    ((torch_device, 2, 2, [0.0]), {"backend": "jax"}, ValueError, "backend must be one of"),
    ((torch_device, 2, 2, []), {}, ValueError, "non-empty vector of finite"),
    ((torch_device, 2, 2, np.zeros((0, 3))), {}, ValueError, "non-empty"),
    ((torch_device, 2, 2, [0.0, np.nan]), {}, ValueError, "finite numbers"),
    ((torch_device, 2, 2, [np.inf]), {}, ValueError, "finite numbers"),
    ((torch_device, 2, 2, "abc"), {}, TypeError, "init_params must be a numeric array"),
    ((torch_device, 2, 2, [object()]), {}, TypeError, "init_params must be a numeric"),
    ((torch_device, 0, 2, [0.0]), {}, ValueError, "in_features must be a positive int"),
    ((torch_device, 2, -1, [0.0]), {}, ValueError, "out_features must be a positive int"),
    ((torch_device, 2.0, 2, [0.0]), {}, ValueError, "in_features must be a positive int"),
    ((torch_device, True, 2, [0.0]), {}, ValueError, "in_features must be a positive int"),
    ((torch_device, 2, 2, [0.0]), {"cancel": "abort"}, TypeError, "cancel must be callable"),
])
def test_function_black_box_constructor_validation(args, kwargs, error, message):
    with pytest.raises(error, match=message):
        FunctionBlackBox(*args, **kwargs)


def test_function_black_box_init_from_parameter():
    box = FunctionBlackBox(torch_device, 4, 3, torch.nn.Parameter(torch.ones(12)))
    np.testing.assert_array_equal(box.initial_params().numpy(), np.ones(12))


@pytest.mark.parametrize("make", [lambda: SLM(0, 3), lambda: MRRBank(3, 0),
                                  lambda: MZIMesh(-1, 3)])
def test_device_feature_validation(make):
    with pytest.raises(ValueError, match="must be a positive int"):
        make()


# ----------------------------------------------------------------------------- shapes

SHAPE_BOXES = [lambda: SLM(4, 3, seed=0), lambda: MZIMesh(4, 3, seed=0),
               lambda: FunctionBlackBox(torch_device, 4, 3, np.zeros(12))]


@pytest.mark.parametrize("make", SHAPE_BOXES)
def test_shape_validation(make):
    box = make()
    d = box.n_params
    name = box.name
    with pytest.raises(ValueError, match=rf"{name}: params must have shape \(n_params={d},\) "
                                         rf"or \(settings, {d}\), got"):
        box(torch.zeros(2, 4), torch.zeros(5))
    with pytest.raises(ValueError, match=rf"params must have shape .*got \(2, {d + 1}\)"):
        box(torch.zeros(2, 4), torch.zeros(2, d + 1))
    with pytest.raises(ValueError, match=r"params must have shape .*got \(1, 1, \d+\)"):
        box(torch.zeros(2, 4), torch.zeros(1, 1, d))
    with pytest.raises(ValueError, match=rf"{name}: x must have shape \(batch, 4\) or "
                                         r"\(1, batch, 4\), got"):
        box(torch.zeros(2, 5), torch.zeros(d))
    with pytest.raises(ValueError, match=r"x must have shape .*\(3, batch, 4\).*got \(2, 2, 4\)"):
        box(torch.zeros(2, 2, 4), torch.zeros(3, d))
    with pytest.raises(ValueError, match=r"x must have shape .*got \(4,\)"):
        box(torch.zeros(4), torch.zeros(d))
    assert (box.n_queries, box.n_calls) == (0, 0)


@pytest.mark.parametrize("which", ["params", "x"])
def test_shape_errors_report_the_callers_shape(which):
    slm = SLM(4, 3, seed=0)
    if which == "params":
        with pytest.raises(ValueError, match=r"got \(5,\)$"):
            slm(torch.zeros(2, 4), torch.zeros(5))
    else:
        with pytest.raises(ValueError, match=r"got \(2, 5\)$"):
            slm(torch.zeros(2, 5), torch.zeros(12))


def test_integer_inputs_are_promoted_to_float():
    slm = SLM(2, 2, seed=0)
    y = slm(torch.ones(3, 2, dtype=torch.int64), torch.zeros(4, dtype=torch.int64))
    assert y.dtype == torch.get_default_dtype()
    np.testing.assert_allclose(y.numpy(), np.full((3, 2), 2 / math.sqrt(2)), rtol=1e-6)


# ----------------------------------------------------------------------------- persistence

@pytest.mark.parametrize("make", [
    lambda: MZIMesh(5, 3, phase_bits=4, crosstalk=0.03, fabrication_error=0.1, seed=3),
    lambda: MRRBank(4, 3, phase_bits=6, fabrication_error=0.2, seed=4),
    lambda: SLM(4, 3, crosstalk=0.1, fabrication_error=0.3, seed=5)])
def test_pickle_round_trip_noise_free(make):
    box = make()
    x = torch.randn(6, box.in_features, generator=torch.Generator().manual_seed(0))
    params = box.initial_params(torch.Generator().manual_seed(1)).expand(2, -1)
    before = box(x, params)
    clone = pickle.loads(pickle.dumps(box))
    assert (clone.n_queries, clone.n_calls) == (box.n_queries, box.n_calls) == (12, 1)
    assert torch.equal(clone(x, params), before)
    assert torch.equal(clone.fabrication_offsets, box.fabrication_offsets)
    assert (clone.phase_bits, clone.crosstalk, clone.fabrication_error) == (
        box.phase_bits, box.crosstalk, box.fabrication_error)


def test_pickle_round_trip_keeps_noise_stream():
    mesh = MZIMesh(4, 4, phase_noise=0.05, detector_noise=0.02, fabrication_error=0.1, seed=7)
    x = torch.randn(3, 4, generator=torch.Generator().manual_seed(0))
    params = mesh.initial_params(torch.Generator().manual_seed(0))
    mesh(x, params)
    clone = pickle.loads(pickle.dumps(mesh))
    assert torch.equal(clone(x, params), mesh(x, params))


def test_pickle_function_black_box():
    box = FunctionBlackBox(numpy_device, 4, 3, np.arange(12.0) / 10, backend="numpy")
    clone = pickle.loads(pickle.dumps(box))
    x = torch.randn(2, 4, dtype=torch.float64)
    params = box.initial_params().double()
    assert torch.equal(clone(x, params), box(x, params))
    assert clone.differentiable is False and clone.name == "numpy_device"


def test_complex_outputs_are_refused():
    box = FunctionBlackBox(lambda x, p: (x * p).to(torch.complex64), 3, 3, np.ones(3),
                           name="field")
    with pytest.raises(BlackBoxError, match="field returned complex values"):
        box(torch.ones(2, 3), box.initial_params())


def test_numpy_scalars_are_accepted_as_options():
    device = SLM(3, 3, phase_noise=np.float32(0.1), seed=0)
    assert device.phase_noise == pytest.approx(0.1)


def test_mzi_repeated_queries_follow_parameter_changes():
    # The mesh remembers U between queries at the same phases; answers must still track every
    # change of the phases and of the fabrication offsets, and count every query.
    mesh = MZIMesh(5, 4, seed=0, fabrication_error=0.1)
    g = rng(12)
    x = g.normal(size=(3, 5))
    offsets = mesh.fabrication_offsets.numpy()
    for _ in range(2):
        params = g.uniform(0, TWO_PI, mesh.n_params)
        for _ in range(2):
            y = mesh(t64(x), t64(params)).numpy()
            np.testing.assert_allclose(y, ref_mesh(x, params + offsets, 5, 4), atol=1e-10)
    assert mesh.n_queries == 12 and mesh.n_calls == 4


def test_mzi_twin_gradient_is_not_cut_by_repeated_queries():
    mesh = MZIMesh(4, 4, seed=0)
    params = mesh.initial_params().double()
    x = torch.randn(2, 4, dtype=torch.float64)
    with torch.no_grad():
        mesh(x, params)  # a query without autograd at the same phases comes first
    params.requires_grad_(True)
    mesh(x, params).sum().backward()
    assert params.grad is not None and bool(params.grad.abs().sum() > 0)


def test_slm_initial_weights_survive_a_coarse_phase_dac():
    # A 4-bit DAC rounds phases to multiples of pi/8; the initial weights must not all round to
    # cos(pi/2) = 0, which would leave a device that outputs nothing and cannot learn.
    slm = SLM(16, 16, phase_bits=4, seed=0)
    y = slm(torch.eye(16), slm.initial_params(torch.Generator().manual_seed(0)))
    assert float((y.abs() > 1e-6).float().mean()) > 0.5
