"""The built-in problems that DeepXDE's examples pose: exact solutions, conditions, training.

Each closed form is checked against the PDE with finite differences in float64 (independent of
the autograd checks in the docstrings), and each problem trains and saves by name.
"""

import math

import numpy as np
import pytest
import torch

import hybridnet
from hybridnet import PINNSolver
from hybridnet.pinn import problems
from hybridnet.pinn.derivatives import FiniteDifferences

NEW_PROBLEMS = {
    "kovasznay": lambda: problems.kovasznay(reynolds=40),
    "laplace_disk": lambda: problems.laplace_disk(n=2),
    "wave_1d": lambda: problems.wave_1d(speed=3.0, initial_velocity=2.0),
    "helmholtz_hole": problems.helmholtz_hole,
}


def _residuals(pde, x, d):
    residual = pde.residual(x, d)
    return residual if isinstance(residual, (list, tuple)) else [residual]


@pytest.mark.parametrize("name", NEW_PROBLEMS)
def test_the_exact_solution_solves_the_pde_and_its_conditions(name):
    pde = NEW_PROBLEMS[name]()
    generator = torch.Generator().manual_seed(0)
    differences = FiniteDifferences(step=1e-4)
    space_axes = pde.domain.space_axes
    x = pde.domain.sample_interior(200, generator, torch.float64)
    d = differences.evaluate(pde.solution, x, space_axes=space_axes)
    for residual in _residuals(pde, x, d):
        assert residual.abs().max() < 1e-4
    for condition in pde.conditions:
        points = condition.sample(pde.domain, 200, generator, torch.float64)
        d = differences.evaluate(pde.solution, points, space_axes=space_axes)
        assert condition.residual(points, d.u, d, pde.domain).abs().max() < 1e-5


def test_kovasznay_matches_its_closed_form():
    reynolds = 20.0
    rate = reynolds / 2 - math.sqrt(reynolds**2 / 4 + 4 * math.pi**2)
    x = torch.tensor([[0.25, 0.1], [-0.5, 1.5], [1.0, 0.0]], dtype=torch.float64)
    u = problems.kovasznay(reynolds).solution(x).numpy()
    a, b = x[:, 0].numpy(), x[:, 1].numpy()
    expected = np.stack([1 - np.exp(rate * a) * np.cos(2 * np.pi * b),
                         rate / (2 * np.pi) * np.exp(rate * a) * np.sin(2 * np.pi * b),
                         0.5 * (1 - np.exp(2 * rate * a))], axis=1)
    np.testing.assert_allclose(u, expected, rtol=1e-12)
    # The pressure condition holds only on the outflow edge x = 1.
    pressure = problems.kovasznay().conditions[2]
    edge = pressure.sample(problems.kovasznay().domain, 50, torch.Generator().manual_seed(1),
                           torch.float64)
    assert torch.all(edge[:, 0] == 1.0)


def test_wave_1d_with_an_initial_velocity_matches_dalembert():
    # d'Alembert: u = (f(x - ct) + f(x + ct)) / 2 + 1 / (2c) * integral of g over [x-ct, x+ct],
    # with f and g extended oddly and 2-periodically (sin does that by itself).
    speed, velocity = 3.0, 2.0
    x = torch.rand(100, 2, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    a, t = x[:, 0], x[:, 1]

    def displacement(s):
        return torch.sin(math.pi * s) + torch.sin(2 * math.pi * s)

    def velocity_antiderivative(s):
        return -velocity * torch.cos(math.pi * s) / math.pi

    expected = ((displacement(a - speed * t) + displacement(a + speed * t)) / 2
                + (velocity_antiderivative(a + speed * t)
                   - velocity_antiderivative(a - speed * t)) / (2 * speed))
    u = problems.wave_1d(speed=speed, initial_velocity=velocity).solution(x)
    torch.testing.assert_close(u, expected, rtol=0, atol=1e-12)


@pytest.mark.parametrize("make, message", [
    (lambda: problems.kovasznay(reynolds=0), "reynolds must be positive"),
    (lambda: problems.laplace_disk(n=-1), "n must be a non-negative integer"),
    (lambda: problems.laplace_disk(n=True), "n must be a non-negative integer"),
    (lambda: problems.laplace_disk(n=1.5), "n must be a non-negative integer"),
    (lambda: problems.wave_1d(speed=-1), "speed must be positive"),
    (lambda: problems.wave_1d(initial_velocity=float("nan")), "initial_velocity must be finite"),
])
def test_bad_arguments_are_refused_by_name(make, message):
    with pytest.raises(ValueError, match=message):
        make()


def test_laplace_on_the_disk_trains_to_a_small_error():
    solver = PINNSolver(problems.laplace_disk(), hidden_layer_sizes=(16, 16), max_iter=300,
                        random_state=0).fit()
    assert solver.relative_l2_error() < 2e-2


def test_kovasznay_trains_every_component(tmp_path):
    pde = problems.kovasznay()
    untrained = PINNSolver(pde, hidden_layer_sizes=(32, 32), max_iter=1, random_state=0).fit()
    assert np.all(untrained.relative_l2_error() > 0.7)
    # Measured: 0.094, 0.37, 0.20 (the defaults' 2,000 steps of 2 x 64: 0.021, 0.070, 0.076).
    solver = PINNSolver(pde, hidden_layer_sizes=(32, 32), max_iter=800, learning_rate=3e-2,
                        random_state=0).fit()
    errors = solver.relative_l2_error()
    assert errors.shape == (3,)
    assert np.all(errors < 0.5)
    # Saved by name: loading rebuilds the problem without being handed it.
    path = tmp_path / "kovasznay.zip"
    hybridnet.save(solver, path)
    loaded = hybridnet.load(path)
    assert loaded.pde.builtin == ("kovasznay", {"reynolds": 20.0})
    x = torch.tensor([[0.0, 0.0], [0.5, 1.0]], dtype=torch.float64)
    np.testing.assert_array_equal(loaded.predict(x), solver.predict(x))
