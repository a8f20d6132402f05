"""PINNSolver reliability: parameter validation, refused fits, random streams, axis errors of
the derivative objects and the diagnosis of divergence."""

import re
import warnings

import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.exceptions import ConvergenceWarning
from sklearn.utils._param_validation import InvalidParameterError

from hybridnet import PINNSolver
from hybridnet.physical import MRRBank
from hybridnet.pinn import PDE, Box, DirichletBC, problems
from hybridnet.pinn import solver as solver_module
from hybridnet.pinn.derivatives import (
    AutogradDerivatives,
    FiniteDifferences,
    SparseGridDerivatives,
    SteinDerivatives,
)

SQUARE = Box([0, 0], [1, 1])


def small_solver(pde=None, **params):
    """A solver that fits in well under a second."""
    settings = dict(hidden_layer_sizes=(8,), max_iter=5, n_collocation=16, n_boundary=8,
                    random_state=0)
    return PINNSolver(pde or problems.poisson_2d(hard_constraint=True), **{**settings, **params})


def interior(n, seed=0, box=SQUARE):
    return box.sample_interior(n, torch.Generator().manual_seed(seed), torch.float64).numpy()


def convergence_messages(solver, *args):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        solver.fit(*args)
    return [str(w.message) for w in caught if issubclass(w.category, ConvergenceWarning)]


# ----------------------------------------------------------------------------- validation


@pytest.mark.parametrize("name", ["learning_rate", "zo_smoothing", "smoothing", "data_weight"])
@pytest.mark.parametrize("value", [np.inf, -np.inf, np.nan])
def test_non_finite_hyperparameters_are_refused_by_name(name, value):
    with pytest.raises(InvalidParameterError, match=f"'{name}' parameter of PINNSolver"):
        small_solver(**{name: value}).fit()


@pytest.mark.parametrize("params", [
    dict(derivatives="finite_difference", lbfgs_iter=2, tt_rank=2, hidden_layer_sizes=(8, 8),
         learning_rate=0.015625, smoothing=0.0078125, data_weight=2.0),
    dict(derivatives="stein", training="bp_free", stein_samples=4, zo_samples=2,
         zo_smoothing=0.0078125, learning_rate=0.015625),
])
def test_numpy_scalars_work_wherever_python_numbers_do(params):
    def as_numpy(value):
        if isinstance(value, bool | str):
            return value
        if isinstance(value, int):
            return np.int64(value)
        if isinstance(value, float):
            return np.float32(value)  # exactly representable values: same fit as Python's
        return np.asarray(value, dtype=np.int64)

    common = dict(max_iter=3, n_collocation=16, n_boundary=8, random_state=0)
    X = interior(20)
    y = problems.poisson_2d().solution(torch.as_tensor(X)).numpy()
    python = small_solver(problems.poisson_2d(), **common, **params).fit(X, y)
    numpy = small_solver(problems.poisson_2d(),
                         **{name: as_numpy(value) for name, value in {**common, **params}.items()})
    numpy.fit(X, y)
    assert numpy.loss_curve_ == python.loss_curve_
    np.testing.assert_array_equal(numpy.predict(X), python.predict(X))
    if params.get("training") == "bp_free":
        assert type(numpy._zo_optimizer.param_groups[0]["n_samples"]) is int


def test_physical_layer_takes_a_black_box_instance_and_refuses_other_objects():
    solver = small_solver(hidden_layer_sizes=(8, 8), derivatives="sparse_grid",
                          physical_layer=MRRBank(8, 8), max_iter=2).fit()
    assert isinstance(solver.module_[2].black_box, MRRBank)
    with pytest.raises(InvalidParameterError, match="'physical_layer' parameter of PINNSolver"):
        small_solver(physical_layer=object()).fit()


# ----------------------------------------------------------------------------- refused fits

X_GOOD = interior(30)
Y_GOOD = problems.poisson_2d().solution(torch.as_tensor(X_GOOD)).numpy()


@pytest.mark.parametrize("break_fit", [
    lambda s: s.set_params(learning_rate=-1.0).fit(),
    lambda s: s.set_params(derivatives="spectral").fit(),
    lambda s: s.set_params(training="bp_free").fit(),  # needs a derivative-free back end
    lambda s: s.fit(X_GOOD + 2),  # outside the domain
    lambda s: s.fit(np.ones((5, 3))),  # validate_data records 3 features before the refusal
    lambda s: s.fit(np.where(X_GOOD > 0.5, np.nan, X_GOOD)),
    lambda s: s.fit(X_GOOD, Y_GOOD[:3]),
    lambda s: s.fit(None, Y_GOOD),
    lambda s: s.set_params(pde=PDE(SQUARE, lambda x, d: d.u * float("nan"))).fit(),
    lambda s: s.set_params(pde=PDE(SQUARE, lambda x, d: d.diff(2))).fit(),
], ids=["bad value", "bad option", "bad combination", "X outside", "X columns", "X NaN",
        "y length", "y without X", "NaN loss", "bad axis"])
def test_a_refused_fit_leaves_the_fitted_solver_as_it_was(break_fit):
    solver = small_solver().fit(X_GOOD, Y_GOOD)
    params = solver.get_params()
    fitted = {name: value for name, value in vars(solver).items() if name not in params}
    prediction = solver.predict(X_GOOD)
    curve = list(solver.loss_curve_)
    with pytest.raises((ValueError, TypeError, IndexError)):
        break_fit(solver)
    after = {name: value for name, value in vars(solver).items() if name not in params}
    assert after.keys() == fitted.keys()
    assert all(after[name] is value for name, value in fitted.items())
    assert solver.n_iter_ == 5 and solver.loss_curve_ == curve and solver.n_features_in_ == 2
    np.testing.assert_array_equal(solver.predict(X_GOOD), prediction)
    solver.set_params(**params).fit()  # and it still fits once the problem is put right
    assert solver.module_ is not fitted["module_"]


def test_a_refused_fit_keeps_the_column_names():
    X = pd.DataFrame(X_GOOD, columns=["x", "y"])
    solver = small_solver().fit(X)
    prediction = solver.predict(X)
    with pytest.raises(ValueError, match="must have 2 columns"):
        solver.fit(pd.DataFrame(np.full((4, 3), 0.5), columns=["a", "b", "c"]))
    assert solver.feature_names_in_.tolist() == ["x", "y"]
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a name mismatch would warn
        np.testing.assert_array_equal(solver.predict(X), prediction)


# ----------------------------------------------------------------------------- random streams


def test_each_random_stream_has_its_own_seed(monkeypatch):
    seeds = {}
    build_mlp, draw = solver_module.build_mlp, PINNSolver._draw

    def recording_build(*args, seed, **options):
        seeds["network"] = seed
        return build_mlp(*args, seed=seed, **options)

    def recording_draw(self, plan):
        seeds.setdefault("points", plan.generator.initial_seed())
        return draw(self, plan)

    monkeypatch.setattr(solver_module, "build_mlp", recording_build)
    monkeypatch.setattr(PINNSolver, "_draw", recording_draw)
    solver = small_solver(derivatives="stein", stein_samples=4, training="bp_free",
                          zo_samples=2).fit()
    seeds["zo"] = solver._zo_optimizer.generator.initial_seed()
    seeds["predict"] = solver_module._streams(solver._seed).predict
    assert len(set(seeds.values())) == 4
    first_draws = [torch.randn(64, generator=torch.Generator().manual_seed(seed))
                   for seed in seeds.values()]
    for index, a in enumerate(first_draws):
        assert not any(torch.equal(a, b) for b in first_draws[index + 1:])


@pytest.mark.parametrize("params", [
    dict(),
    dict(derivatives="stein", stein_samples=4, training="bp_free", zo_samples=2),
])
def test_fits_are_reproducible_for_a_fixed_random_state(params):
    X = interior(10)
    first = small_solver(random_state=3, **params).fit()
    again = small_solver(random_state=3, **params).fit()
    assert first.loss_curve_ == again.loss_curve_
    np.testing.assert_array_equal(first.predict(X), again.predict(X))
    np.testing.assert_array_equal(first.predict(X), first.predict(X))
    other = small_solver(random_state=4, **params).fit()
    assert other.loss_curve_ != first.loss_curve_


# ----------------------------------------------------------------------------- axis errors

BACK_ENDS = [AutogradDerivatives(), FiniteDifferences(1e-3), SteinDerivatives(0.1, 4),
             SparseGridDerivatives(0.1)]


def derivatives_of(backend, dim):
    generator = torch.Generator().manual_seed(0)
    x = torch.rand(5, dim, generator=generator, dtype=torch.float64)
    noise = backend.draw(5, dim, generator, dtype=torch.float64, device="cpu")
    return backend.evaluate(lambda p: (p**2).sum(dim=1), x, noise, space_axes=list(range(dim)))


@pytest.mark.parametrize("backend", BACK_ENDS, ids=lambda b: type(b).__name__)
@pytest.mark.parametrize("dim, call, message", [
    (1, lambda d: d.diff(1),
     "d.diff(1): axis 1 is out of range for a 1-dimensional domain (valid axes 0..0)"),
    (2, lambda d: d.diff2(3),
     "d.diff2(3): axis 3 is out of range for a 2-dimensional domain (valid axes 0..1)"),
    (2, lambda d: d.grad([0, 2]),
     "d.grad([0, 2]): axis 2 is out of range for a 2-dimensional domain (valid axes 0..1)"),
    (3, lambda d: d.laplacian((0, 3)),
     "d.laplacian((0, 3)): axis 3 is out of range for a 3-dimensional domain (valid axes 0..2)"),
    (2, lambda d: d.diff(-1), "d.diff(-1): axis -1 is out of range for a 2-dimensional domain "
                              "(valid axes 0..1; negative axes are not accepted)"),
])
def test_an_axis_out_of_range_names_the_call_and_the_dimension(backend, dim, call, message):
    with pytest.raises(IndexError, match=re.escape(message)):
        call(derivatives_of(backend, dim))


def test_axes_must_be_ints_and_numpy_ints_are():
    d = derivatives_of(FiniteDifferences(1e-3), 2)
    with pytest.raises(TypeError, match=r"d.diff\(0.5\): an axis must be an int, got float"):
        d.diff(0.5)
    with pytest.raises(TypeError, match=r"d.grad\(0\): axes must be a sequence of ints"):
        d.grad(0)
    torch.testing.assert_close(d.diff(np.int64(1)), d.diff(1))
    torch.testing.assert_close(d.laplacian(np.arange(2)), d.laplacian())


@pytest.mark.parametrize("params", [
    dict(derivatives="autograd"), dict(derivatives="finite_difference"),
    dict(derivatives="stein", stein_samples=4), dict(derivatives="sparse_grid"),
    dict(derivatives="sparse_grid", training="bp_free"),
])
def test_an_axis_error_in_the_residual_reaches_the_user(params):
    pde = PDE(Box([0], [1]), lambda x, d: d.diff2(0) + d.diff(1), [DirichletBC(0.0)])
    message = "d.diff(1): axis 1 is out of range for a 1-dimensional domain (valid axes 0..0)"
    with pytest.raises(IndexError, match=re.escape(message)):
        small_solver(pde, **params).fit()


# ----------------------------------------------------------------------------- divergence


def test_a_residual_that_turns_nan_is_named_and_not_blamed_on_the_learning_rate():
    calls = []

    def residual(x, d):
        calls.append(1)
        value = d.laplacian() + 1.0
        return value * float("nan") if len(calls) > 50 else value

    pde = PDE(SQUARE, residual, [DirichletBC(0.0)])
    solver = small_solver(pde, max_iter=200)
    (message,) = convergence_messages(solver)
    assert "the PDE residual is NaN or inf" in message
    assert "condition 0" not in message
    assert "smaller learning rate will not help" in message
    assert "Try a smaller learning rate" not in message
    assert solver.n_iter_ == 49 and np.isfinite(solver.predict(interior(3))).all()


def test_sqrt_of_a_negative_output_is_diagnosed_as_the_problem():
    # The boundary condition pulls u below -1, where sqrt(u + 1) is NaN.
    pde = PDE(Box([0], [1]), lambda x, d: d.diff2(0) - torch.sqrt(d.u + 1),
              [DirichletBC(-3.0, weight=10.0)])
    (message,) = convergence_messages(small_solver(pde, max_iter=300, learning_rate=1e-2))
    assert "the PDE residual is NaN or inf" in message
    assert "sqrt or log of a negative value" in message
    assert "Try a smaller learning rate" not in message


def test_a_condition_that_is_nan_from_the_start_is_named_with_its_class():
    pde = PDE(SQUARE, lambda x, d: d.laplacian() + 2.0,
              [DirichletBC(0.0), DirichletBC(lambda x: torch.log(x[:, 0] - 0.5))])
    with pytest.raises(ValueError, match=re.escape("condition 1 (DirichletBC) is NaN or inf")):
        small_solver(pde).fit()


def test_weights_that_blow_up_are_blamed_on_the_learning_rate():
    solver = small_solver(problems.poisson_2d(), learning_rate=1e30, max_iter=50)
    (message,) = convergence_messages(solver)
    assert "learning_rate (now 1e+30)" in message
    assert "will not help" not in message


def test_non_finite_weights_are_blamed_on_the_learning_rate():
    solver = small_solver(learning_rate=0.5)
    plan = solver._plan(None, None)
    plan.last_draws = solver._draw(plan)
    with torch.no_grad():
        next(plan.loss.parameters())[0, 0] = float("inf")
    message = solver._explain_divergence(plan)
    assert "weights are no longer finite" in message and "learning_rate (now 0.5)" in message
