"""``PINNSolver(checkpoint=...)``: a fit saved every few steps resumes, after its process was
killed, to the solver an uninterrupted fit makes; a checkpoint of other settings is refused."""

import json
import os
import subprocess
import sys
import textwrap
import zipfile

import numpy as np
import pytest
from sklearn.datasets import load_iris

import hybridnet
from hybridnet import HybridNetClassifier, PINNSolver
from hybridnet.pinn import PDE, Box, DirichletBC, problems

# Run in a fresh process: solve a Poisson problem whose residual ends the process (os._exit, no
# clean-up at all) on its KILL_CALLS-th call once the fit has run KILL_STEP steps, and write
# the predictions, loss curve and counters. Smaller L-BFGS rounds and hybrid windows than the
# defaults let a fit of a few hundred steps run several rounds and switch to CGE.
SCRIPT = textwrap.dedent("""
    import math, os, sys
    import numpy as np
    import torch
    import hybridnet.pinn.solver
    from hybridnet import PINNSolver
    from hybridnet.pinn import PDE, RAD, Box, DirichletBC

    hybridnet.pinn.solver.LBFGS_ROUND = 10
    hybridnet.pinn.solver.HYBRID_WINDOW = 5
    kill_step, kill_calls = int(sys.argv[1]), int(sys.argv[2])
    calls = 0

    def residual(x, d):
        global calls
        if len(getattr(solver, "history_", ())) >= kill_step >= 0:
            calls += 1
            if calls == kill_calls:
                os._exit(3)
        return d.laplacian() + 2 * math.pi**2 * torch.sin(math.pi * x[:, 0]) \\
            * torch.sin(math.pi * x[:, 1])

    solver = PINNSolver(PDE(Box([0, 0], [1, 1]), residual, [DirichletBC(0.0)]),
                        hidden_layer_sizes=(8, 8), n_collocation=64, n_boundary=16,
                        random_state=0, checkpoint=sys.argv[3] or None, checkpoint_every=7,
                        **eval(sys.argv[5]))
    solver.fit()
    X = np.random.default_rng(0).uniform(size=(50, 2))
    np.save(sys.argv[4], np.concatenate([
        solver.predict(X), solver.loss_curve_, solver.loss_weights_,
        [solver.n_iter_, solver.n_lbfgs_iter_, solver.n_network_evaluations_]]))
""")

BACKPROP = {"max_iter": 60, "sampling": "RAD(every=20)", "lbfgs_iter": 30}
BP_FREE = {"max_iter": 150, "training": "'bp_free'", "derivatives": "'finite_difference'"}


def start(tmp_path, name, checkpoint, options, kill_step=-1, kill_calls=0):
    """Start the script; ``options``: the solver's further options, as source code."""
    script = tmp_path / "fit.py"
    script.write_text(SCRIPT)
    out = tmp_path / f"{name}.npy"
    options = "{" + ", ".join(f"{key!r}: {value}" for key, value in options.items()) + "}"
    process = subprocess.Popen(
        [sys.executable, str(script), str(kill_step), str(kill_calls), checkpoint, str(out),
         options],
        stderr=subprocess.PIPE, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
    return process, out


def finish(started):
    process, out = started
    _, errors = process.communicate(timeout=600)
    return process.returncode, errors, (np.load(out) if process.returncode == 0 else None)


def stored(path):
    """The checkpoint's state and hybrid switch, as config.json holds them."""
    with zipfile.ZipFile(path) as archive:
        fitted = json.loads(archive.read("config.json"))["estimator"]["fitted"]
    return fitted["_checkpoint_state"], fitted.get("switch")


@pytest.mark.parametrize("options, kills", [
    (BACKPROP, [(47, 1, "during Adam, after RAD's refresh at step 40"),
                (60, 25, "during L-BFGS, after a round")]),
    (BP_FREE, [(47, 1, "before the hybrid switch, mid-window"),
               (120, 1, "after the hybrid switch to CGE")]),
], ids=["backprop-rad-balancing-lbfgs", "bp_free-hybrid"])
def test_a_fit_killed_twice_resumes_to_the_uninterrupted_solver(tmp_path, options, kills):
    checkpoint = str(tmp_path / "fit.hnet")
    uninterrupted = start(tmp_path, "uninterrupted", "", options)
    for index, (kill_step, kill_calls, where) in enumerate(kills):
        code, errors, _ = finish(start(tmp_path, f"killed-{index}", checkpoint, options,
                                       kill_step, kill_calls))
        assert code == 3, errors
        # the last checkpoint before the kill
        state, switch = stored(checkpoint)
        if kill_step == options["max_iter"]:
            assert state["steps_complete"] and state["lbfgs_rounds"] >= 1, where
        else:
            assert not state["steps_complete"], where
            assert state["scheduler_steps"] == kill_step // 7 * 7, where
        if options is BP_FREE:  # the switch comes between the kills (after 85 steps)
            assert (switch["switched_at"] is None) == (index == 0), where
            assert len(state["window"]) == (42 % 5 if index == 0 else 0), where
        else:
            assert state["points"] is not None, where  # RAD's distribution
    code, errors, expected = finish(uninterrupted)
    assert code == 0, errors
    assert expected[-4] > 1  # loss_weights_: the balancing factor moved
    code, errors, resumed = finish(start(tmp_path, "resumed", checkpoint, options))
    assert code == 0, errors
    np.testing.assert_array_equal(resumed, expected)
    assert stored(checkpoint)[0]["complete"]


def _poisson(**options):
    return PINNSolver(problems.poisson_2d(), **{
        "hidden_layer_sizes": (8,), "n_collocation": 32, "n_boundary": 8, "max_iter": 12,
        "random_state": 0, **options})


def test_a_finished_checkpoint_is_the_model_and_loads(tmp_path):
    path = tmp_path / "fit.hnet"
    solver = _poisson(checkpoint=path, checkpoint_every=5).fit()
    plain = _poisson().fit()
    X = np.random.default_rng(0).uniform(size=(20, 2))
    np.testing.assert_array_equal(solver.predict(X), plain.predict(X))
    assert solver.loss_curve_ == plain.loss_curve_
    assert not any(name.endswith(".partial") for name in os.listdir(tmp_path))
    again = _poisson(checkpoint=path, checkpoint_every=5).fit()  # nothing left to train
    np.testing.assert_array_equal(again.predict(X), plain.predict(X))
    assert again.history_[:, "train_loss"] == plain.history_[:, "train_loss"]
    assert again.n_network_evaluations_ == plain.n_network_evaluations_
    loaded = hybridnet.load(path)
    np.testing.assert_array_equal(loaded.predict(X), plain.predict(X))
    assert loaded.n_iter_ == 12


def test_a_checkpoint_of_other_settings_data_or_problem_is_refused_by_name(tmp_path):
    path = tmp_path / "fit.hnet"
    _poisson(checkpoint=path).fit()
    with pytest.raises(ValueError, match=r"other hyperparameters: learning_rate=None \(now "
                                         r"0.001\), max_iter=12 \(now 13\); set them back"):
        _poisson(checkpoint=path, learning_rate=1e-3, max_iter=13).fit()
    with pytest.raises(ValueError, match=r"pde=problems.poisson_2d\(hard_constraint=False\) "
                                         r"\(now problems.poisson_2d\(hard_constraint=True\)\)"):
        _poisson(checkpoint=path).set_params(pde=problems.poisson_2d(hard_constraint=True)).fit()
    # a problem of another dimension: named, although its network could not load the file's
    line = PDE(Box([0.0], [1.0]), lambda x, d: d.diff2(0) + 1.0, [DirichletBC(0.0)])
    with pytest.raises(ValueError, match=r"pde=problems.poisson_2d\(hard_constraint=False\) "
                                         r"\(now PDE\(Box\(\[0.0\], \[1.0\]\).* with residual .*"
                                         r"<lambda>\)"):
        _poisson(checkpoint=path).set_params(pde=line).fit()
    with pytest.raises(ValueError, match=r"sampling='uniform' \(now 'rad'\)"):
        _poisson(checkpoint=path, sampling="rad").fit()
    X = np.random.default_rng(0).uniform(size=(30, 2))
    with pytest.raises(ValueError, match=r"on other data \(X and y of fit differ\)"):
        _poisson(checkpoint=path).fit(X)
    solver = _poisson(checkpoint=path).fit()
    before = solver.predict(X)
    with pytest.raises(ValueError, match=r"max_iter=12 \(now 13\)"):
        solver.set_params(max_iter=13).fit()
    np.testing.assert_array_equal(solver.predict(X), before)  # a refused fit changes nothing
    clf = tmp_path / "clf.hnet"
    iris_X, iris_y = load_iris(return_X_y=True)
    HybridNetClassifier((4,), physical_layer=None, max_iter=1, random_state=0,
                        checkpoint=clf).fit(iris_X, iris_y)
    with pytest.raises(ValueError, match=r"not a checkpoint of a PINNSolver fit \(it holds a "
                                         r"HybridNetClassifier checkpoint\)"):
        _poisson(checkpoint=clf).fit()
    model = tmp_path / "model.hnet"
    hybridnet.save(_poisson().fit(), model)
    with pytest.raises(ValueError, match=r"not a checkpoint of a PINNSolver fit \(it holds a "
                                         r"PINNSolver\)"):
        _poisson(checkpoint=model).fit()


def test_checkpoint_every_is_validated():
    with pytest.raises(ValueError, match="checkpoint_every"):
        _poisson(checkpoint_every=0).fit()
