"""PINNSolver on the built-in problems with four training set-ups, and DeepXDE beside it.

For each problem (Poisson 2-D, heat 1-D, Burgers 1-D, Black-Scholes, HJB 20-D) and each of

- autograd derivatives + first-order (Adam),
- Stein derivatives + first-order,
- sparse-grid derivatives + first-order,
- sparse-grid derivatives + back-propagation-free, TT layers,

(HJB adds finite differences + back-propagation-free, TT layers: 43 network evaluations per
point instead of the sparse grid's 925), reports the relative L2 error against the reference
solution (10,000 uniform points), network evaluations, wall time and trainable parameters; for
HJB also the relative error of the learned part ``N`` against its exact value 1, since the
known part ``sum x_i + 1 - t`` dominates u.

``burgers_deepxde`` is Burgers at the budget of DeepXDE's own example (2-20-20-20-1 tanh,
2,540 interior points, 80 per condition, 15,000 Adam steps at 1e-3, then L-BFGS): PINNSolver
with its defaults at that size, with RAD sampling, with L-BFGS, and with both. ``heat_inverse``
and ``burgers_inverse`` recover the diffusivity / viscosity from noisy samples of the reference
solution (the coefficient's truth and fitted value are in the row).

With DeepXDE installed (the ``benchmarks`` extra; PyTorch back end) it also trains DeepXDE on
Poisson with the same network, optimiser, learning rate and step count, and DeepXDE's Burgers
example (on t in [0, 1], scored against the package's Cole-Hopf reference: nothing is fetched).
Every PINNSolver row also writes a PNG of prediction, reference and error under
``benchmarks/results/pinn/``.

Usage::

    python benchmarks/pinn.py [--steps-scale 1.0] [--problems poisson heat ...] [--no-deepxde]

Step counts and per-set-up options are in ``PROBLEMS``; ``--steps-scale`` multiplies the steps.
Writes ``pinn.json`` / ``pinn.md`` under ``benchmarks/results/``, keeping earlier rows of runs
not repeated (each row records its command).
"""

import argparse
import json
import math
import os
import pathlib
import re
import time

import matplotlib.pyplot as plt
import numpy as np
import torch
from _results import command_line, merge_rows

from hybridnet import PINNSolver
from hybridnet.pinn import problems
from hybridnet.pinn.solver import DECAY_TO, LEARNING_RATES
from hybridnet.plotting import plot_solution

SETUPS = {
    "autograd + first-order": dict(derivatives="autograd"),
    "Stein + first-order": dict(derivatives="stein", stein_samples=64),
    # Variance reduction's effect: the same 129 evaluations per point without it, and a
    # quarter of them (33) with it.
    "Stein, plain Monte Carlo + first-order": dict(derivatives="stein", stein_samples=64,
                                                   stein_sampling="mc",
                                                   stein_control_variates=False),
    "Stein N=16 + first-order": dict(derivatives="stein", stein_samples=16),
    "sparse grid + first-order": dict(derivatives="sparse_grid"),
    # The settings these rows were measured at (before bp_free's defaults became the hybrid
    # schedule at 3e-2 with balancing): pinned so that the rows reproduce.
    "sparse grid + BP-free, TT": dict(derivatives="sparse_grid", training="bp_free", tt_rank=4,
                                      zo_estimator="central_rge", zo_samples=10,
                                      learning_rate=3e-3, loss_balancing="none"),
    "finite differences + BP-free, TT": dict(derivatives="finite_difference",
                                             training="bp_free", tt_rank=4,
                                             zo_estimator="central_rge", zo_samples=10,
                                             learning_rate=3e-3, loss_balancing="none"),
}
STANDARD_SETUPS = ("autograd + first-order", "Stein + first-order", "sparse grid + first-order",
                   "sparse grid + BP-free, TT")
# Burgers at DeepXDE's budget: the defaults, then the two options that target its shock.
LBFGS_ITER = 15000
DEEPXDE_BUDGET_SETUPS = {
    "defaults": {},
    "defaults + RAD": dict(sampling="rad"),
    "defaults + L-BFGS": dict(lbfgs_iter=LBFGS_ITER),
    "defaults + RAD + L-BFGS": dict(sampling="rad", lbfgs_iter=LBFGS_ITER),
}
SETUPS.update(DEEPXDE_BUDGET_SETUPS)
# Inverse problems: noisy samples of the reference solution, the coefficient started at half
# its truth.
INVERSE_SETUPS = {
    "inverse, autograd": dict(derivatives="autograd"),
    "inverse, sparse grid": dict(derivatives="sparse_grid"),
}
SETUPS.update(INVERSE_SETUPS)
N_SAMPLES, NOISE = 500, 0.01
_SMALL = dict(hidden_layer_sizes=(64, 64), n_collocation=256)
# Per problem: the network, steps of first-order and of BP-free training (both scaled by
# --steps-scale), the set-ups run, and options (steps included) of single set-ups.
PROBLEMS = {
    "poisson": dict(make=problems.poisson_2d, options=_SMALL, steps=3000, bp_free_steps=3000),
    "heat": dict(make=problems.heat_1d, options=_SMALL, steps=3000, bp_free_steps=3000),
    "burgers": dict(make=problems.burgers_1d, options=_SMALL, steps=3000, bp_free_steps=3000),
    "black_scholes": dict(make=problems.black_scholes, options=_SMALL, steps=3000,
                          bp_free_steps=3000),
    "burgers_deepxde": dict(
        make=problems.burgers_1d, steps=15000, setups=tuple(DEEPXDE_BUDGET_SETUPS),
        options=dict(hidden_layer_sizes=(20, 20, 20), n_collocation=2540, n_boundary=80)),
    "heat_inverse": dict(
        make=lambda: problems.heat_1d(unknown_diffusivity=0.05), truth=("diffusivity", 0.1),
        options=dict(_SMALL, hidden_layer_sizes=(32, 32)), steps=3000,
        setups=tuple(INVERSE_SETUPS)),
    "burgers_inverse": dict(
        make=lambda: problems.burgers_1d(unknown_viscosity=0.5 * problems.BURGERS_VISCOSITY),
        truth=("viscosity", problems.BURGERS_VISCOSITY),
        # Adam alone fitted nu 8.5 % high from these samples; RAD points and L-BFGS bring the
        # shock, which sets nu, into focus (+1.0 %, and +0.1 % from another draw of samples).
        options=dict(hidden_layer_sizes=(20, 20, 20), n_collocation=2540, n_boundary=80,
                     sampling="rad", lbfgs_iter=5000),
        steps=15000, setups=("inverse, autograd",)),
    "hjb": dict(
        make=lambda: problems.hjb(20), steps=1000, bp_free_steps=200,
        # learning_rate 3e-3: the rate these rows were tuned and measured at.
        options=dict(hidden_layer_sizes=(128, 128), activation="sin", n_collocation=100,
                     learning_rate=3e-3),
        setups=STANDARD_SETUPS + ("finite differences + BP-free, TT",),
        overrides={
            # Adam alone stalls near 6e-3 whatever the step count; L-BFGS on one draw of 2,000
            # points after Adam (1,000 points gave 7e-4 to 1.04e-3 depending on thread count).
            "autograd + first-order": dict(n_collocation=2000, lbfgs_iter=2000),
            # 925 network evaluations per point, 20 perturbed losses per step (float64): 20
            # points make a step of about 0.45 s on 2 cores; 3,000 steps fit in 30 minutes.
            # Adam's rate 3e-2 (decayed to a twentieth); 0.1 diverged, 1e-2 learned 3x slower.
            "sparse grid + BP-free, TT": dict(n_collocation=20, learning_rate=3e-2,
                                              steps=3000),
            "finite differences + BP-free, TT": dict(learning_rate=3e-2, steps=600),
        }),
}


def hjb_learned_part_error(solver):
    """Relative L2 error of N against its exact value 1 (u = sum x + (1 - t) N)."""
    pde = solver.pde
    X = pde.domain.sample_interior(10000, torch.Generator().manual_seed(12345),
                                   torch.float64).numpy()
    X = X[X[:, -1] < 0.99]  # N is undetermined where (1 - t) vanishes
    learned = (solver.predict(X) - X[:, :-1].sum(axis=1)) / (1 - X[:, -1])
    return float(np.linalg.norm(learned - 1) / np.sqrt(len(learned)))


def slug(text):
    """A file name from a set-up's name: 'Stein + first-order' -> 'stein_first_order'."""
    return re.sub(r"[^a-z0-9]+", "_", text.lower()).strip("_")


def run_hybridnet(name, setup, scale, out):
    problem = PROBLEMS[name]
    options = {**problem["options"], **SETUPS[setup],
               **problem.get("overrides", {}).get(setup, {})}
    bp_free = options.get("training") == "bp_free"
    steps = options.pop("steps", problem["bp_free_steps" if bp_free else "steps"])
    steps = max(1, int(steps * scale))
    pde = problem["make"]()
    solver = PINNSolver(pde, max_iter=steps, random_state=0, **options)
    data = pde.sample_solution(N_SAMPLES, NOISE, random_state=0) if "truth" in problem else ()
    start = time.perf_counter()
    solver.fit(*data)
    seconds = time.perf_counter() - start
    folder = out / "pinn"
    folder.mkdir(exist_ok=True)
    figure = plot_solution(solver, folder / f"{name}_{slug(setup)}.png", resolution=100,
                           title=f"{name}: {setup}, {steps} steps")
    plt.close(figure)
    row = {"problem": name, "setup": setup,
           "steps": f"{steps} + {solver.n_lbfgs_iter_} L-BFGS" if solver.lbfgs_iter else steps,
           "relative_l2": solver.relative_l2_error(),
           "network_evaluations": solver.n_network_evaluations_,
           "seconds": seconds,
           "parameters": sum(p.numel() for p in solver.module_.parameters())}
    if "truth" in problem:
        coefficient, truth = problem["truth"]
        row["coefficient"] = {"name": coefficient, "truth": truth,
                              "fitted": solver.parameters_[coefficient],
                              "samples": N_SAMPLES, "noise": NOISE}
    if name == "hjb":
        row["learned_part_error"] = hjb_learned_part_error(solver)
    return row


DEEPXDE = "DeepXDE (autograd + Adam)"


def run_deepxde(steps):
    """DeepXDE's PyTorch back end on the same Poisson problem, network and optimiser."""
    dde = _deepxde()
    if dde is None:
        return None
    dde.config.set_random_seed(0)
    pi = math.pi

    def pde(x, u):
        laplacian = dde.grad.hessian(u, x, i=0, j=0) + dde.grad.hessian(u, x, i=1, j=1)
        return laplacian + 2 * pi**2 * torch.sin(pi * x[:, 0:1]) * torch.sin(pi * x[:, 1:2])

    def solution(x):
        return np.sin(pi * x[:, 0:1]) * np.sin(pi * x[:, 1:2])

    geometry = dde.geometry.Rectangle([0, 0], [1, 1])
    condition = dde.icbc.DirichletBC(geometry, lambda x: 0, lambda _, on_boundary: on_boundary)
    # Same budget of points per step as PINNSolver (256 interior, 128 boundary), resampled
    # every step as PINNSolver does.
    data = dde.data.PDE(geometry, pde, condition, num_domain=256, num_boundary=128,
                        solution=solution, num_test=10000, train_distribution="uniform")
    net = dde.nn.FNN([2, 64, 64, 1], "tanh", "Glorot normal")
    model = dde.Model(data, net)
    # PINNSolver's default schedule: 1e-2 decayed exponentially to a twentieth.
    rate = LEARNING_RATES["backprop"]
    model.compile("adam", lr=rate, decay=("step", 1, DECAY_TO["exponential"] ** (1 / steps)))
    resampler = dde.callbacks.PDEPointResampler(period=1)
    start = time.perf_counter()
    model.train(iterations=steps, callbacks=[resampler], display_every=steps)
    seconds = time.perf_counter() - start
    X = problems.poisson_2d().domain.sample_interior(
        10000, torch.Generator().manual_seed(12345), torch.float64).numpy()
    predicted = model.predict(X).ravel()
    exact = solution(X).ravel()
    return {"problem": "poisson", "setup": DEEPXDE, "steps": steps,
            "relative_l2": float(np.linalg.norm(predicted - exact) / np.linalg.norm(exact)),
            "network_evaluations": steps * (256 + 128), "seconds": seconds,
            "parameters": sum(p.numel() for p in net.parameters())}


DEEPXDE_BURGERS = "DeepXDE's Burgers example (Adam)"
DEEPXDE_BURGERS_LBFGS = "DeepXDE's Burgers example (Adam + L-BFGS)"


def deepxde_burgers(dde):
    """DeepXDE's own Burgers example (``examples/pinn_forward/Burgers.py``), on t in [0, 1]:
    its model, uncompiled, seeded with 0.

    Its network, points and initialisation as published: 2-20-20-20-1 tanh with Glorot normal
    initialisation, 2,540 interior, 80 boundary and 160 initial points fixed for the whole run.
    """
    dde.config.set_random_seed(0)
    nu = problems.BURGERS_VISCOSITY

    def pde(x, u):
        u_x = dde.grad.jacobian(u, x, i=0, j=0)
        u_t = dde.grad.jacobian(u, x, i=0, j=1)
        return u_t + u * u_x - nu * dde.grad.hessian(u, x, i=0, j=0)

    geometry = dde.geometry.GeometryXTime(dde.geometry.Interval(-1, 1),
                                          dde.geometry.TimeDomain(0, 1))
    boundary = dde.icbc.DirichletBC(geometry, lambda x: 0, lambda _, on_boundary: on_boundary)
    initial = dde.icbc.IC(geometry, lambda x: -np.sin(np.pi * x[:, 0:1]),
                          lambda _, on_initial: on_initial)
    data = dde.data.TimePDE(geometry, pde, [boundary, initial], num_domain=2540,
                            num_boundary=80, num_initial=160)
    net = dde.nn.FNN([2, 20, 20, 20, 1], "tanh", "Glorot normal")
    return dde.Model(data, net)


def burgers_test_points():
    """The 10,000 points (float64, seed 12345) Burgers' DeepXDE-budget runs are scored at, and
    the Cole-Hopf reference there (numpy)."""
    reference = problems.burgers_1d()
    X = reference.domain.sample_interior(10000, torch.Generator().manual_seed(12345),
                                         torch.float64)
    return X, reference.solution(X).numpy()


def run_deepxde_burgers():
    """:func:`deepxde_burgers` trained as the example does: 15,000 Adam steps at 1e-3, then
    L-BFGS. Scored on the same 10,000 points and Cole-Hopf reference as PINNSolver (its data
    file is not fetched). Returns the rows after Adam and after L-BFGS.
    """
    dde = _deepxde()
    if dde is None:
        return []
    model = deepxde_burgers(dde)
    X, exact = burgers_test_points()
    X = X.numpy()
    parameters = sum(p.numel() for p in model.net.parameters())
    per_step = 2540 + 80 + 160
    rows, start = [], time.perf_counter()
    for setup, optimizer, options in ((DEEPXDE_BURGERS, "adam", dict(iterations=15000)),
                                      (DEEPXDE_BURGERS_LBFGS, "L-BFGS", {})):
        model.compile(optimizer, **({"lr": 1e-3} if optimizer == "adam" else {}))
        model.train(display_every=1000, **options)
        predicted = model.predict(X).ravel()
        steps = model.train_state.step
        error = np.linalg.norm(predicted - exact) / np.linalg.norm(exact)
        rows.append({"problem": "burgers_deepxde", "setup": setup,
                     "steps": "15000" if optimizer == "adam" else f"15000 + {steps - 15000} L-BFGS",
                     "relative_l2": float(error),
                     "network_evaluations": steps * per_step,
                     "seconds": time.perf_counter() - start, "parameters": parameters})
    return rows


def _deepxde():
    os.environ.setdefault("DDE_BACKEND", "pytorch")
    try:
        import deepxde as dde
    except ImportError:
        print("DeepXDE is not installed: pip install -e '.[benchmarks]' (comparison skipped)",
              flush=True)
        return None
    return dde


def table(rows):
    lines = ["| problem | set-up | steps | relative L2 | learned-part error | coefficient: true "
             "-> fitted | network evaluations | seconds | parameters | command |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for row in rows:
        learned = f"{row['learned_part_error']:.2e}" if "learned_part_error" in row else "-"
        coefficient = row.get("coefficient")
        fitted = "-" if coefficient is None else (
            f"{coefficient['name']} {coefficient['truth']:.5g} -> {coefficient['fitted']:.5g} "
            f"({100 * (coefficient['fitted'] / coefficient['truth'] - 1):+.1f} %; "
            f"{coefficient['samples']} samples, {100 * coefficient['noise']:g} % noise)")
        lines.append(f"| {row['problem']} | {row['setup']} | {row['steps']} | "
                     f"{row['relative_l2']:.2e} | {learned} | {fitted} | "
                     f"{row['network_evaluations']:,} | {row['seconds']:.0f} | "
                     f"{row['parameters']:,} | `{row['command']}` |")
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--problems", nargs="+", default=list(PROBLEMS), choices=list(PROBLEMS))
    parser.add_argument("--setups", nargs="*", choices=list(SETUPS),
                        help="default: each problem's own list; none: only DeepXDE")
    parser.add_argument("--steps-scale", type=float, default=1.0)
    parser.add_argument("--no-deepxde", action="store_true")
    parser.add_argument("--out", default="benchmarks/results")
    args = parser.parse_args(argv)
    torch.set_num_threads(min(torch.get_num_threads(), 2))
    out = pathlib.Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    command = command_line("pinn.py", argv)
    order = [(name, setup) for name in PROBLEMS
             for setup in (*SETUPS, DEEPXDE, DEEPXDE_BURGERS, DEEPXDE_BURGERS_LBFGS)]

    def record(row):
        # Written after every run, so a long benchmark leaves its results as it goes.
        row["command"] = command
        print(json.dumps(row), flush=True)
        rows = merge_rows(out / "pinn.json", [row], key=lambda r: (r["problem"], r["setup"]),
                          sort_key=lambda r: order.index((r["problem"], r["setup"])))
        (out / "pinn.md").write_text("# PINN benchmark\n\n" + table(rows) + "\n")

    for name in args.problems:
        default = PROBLEMS[name].get("setups", STANDARD_SETUPS)
        for setup in default if args.setups is None else args.setups:
            record(run_hybridnet(name, setup, args.steps_scale, out))
        if name == "poisson" and not args.no_deepxde:
            row = run_deepxde(max(1, int(PROBLEMS["poisson"]["steps"] * args.steps_scale)))
            if row is not None:
                record(row)
        if name == "burgers_deepxde" and not args.no_deepxde:
            for row in run_deepxde_burgers():
                record(row)
    print((out / "pinn.md").read_text())


if __name__ == "__main__":
    main()
