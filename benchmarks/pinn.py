"""PINNSolver on the built-in problems with four training set-ups, and DeepXDE on Poisson.

For each problem (Poisson 2-D, heat 1-D, Burgers 1-D, Black-Scholes, HJB 20-D) and each of

- autograd derivatives + first-order (Adam),
- Stein derivatives + first-order,
- sparse-grid derivatives + first-order,
- sparse-grid derivatives + back-propagation-free, TT layers,

(HJB adds finite differences + back-propagation-free, TT layers: 43 network evaluations per
point instead of the sparse grid's 925), reports the relative L2 error against the reference
solution (10,000 uniform points), network evaluations, wall time and trainable parameters; for
HJB also the relative error of the learned part ``N`` against its exact value 1, since the
known part ``sum x_i + 1 - t`` dominates u. With DeepXDE installed (the ``benchmarks`` extra;
PyTorch back end) it also trains DeepXDE on the same Poisson problem with the same network,
optimiser, learning rate and step count.

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
import time

import numpy as np
import torch
from _results import command_line, merge_rows

from hybridnet import PINNSolver
from hybridnet.pinn import problems

SETUPS = {
    "autograd + first-order": dict(derivatives="autograd"),
    "Stein + first-order": dict(derivatives="stein", stein_samples=64),
    "sparse grid + first-order": dict(derivatives="sparse_grid"),
    "sparse grid + BP-free, TT": dict(derivatives="sparse_grid", training="bp_free", tt_rank=4,
                                      zo_estimator="central_rge", zo_samples=10),
    "finite differences + BP-free, TT": dict(derivatives="finite_difference",
                                             training="bp_free", tt_rank=4,
                                             zo_estimator="central_rge", zo_samples=10),
}
STANDARD_SETUPS = tuple(SETUPS)[:4]
_SMALL = dict(hidden_layer_sizes=(64, 64), n_collocation=256)
# Per problem: the network, steps of first-order and of BP-free training (both scaled by
# --steps-scale), the set-ups run, and options (steps included) of single set-ups.
PROBLEMS = {
    "poisson": dict(make=problems.poisson_2d, options=_SMALL, steps=3000, bp_free_steps=3000),
    "heat": dict(make=problems.heat_1d, options=_SMALL, steps=3000, bp_free_steps=3000),
    "burgers": dict(make=problems.burgers_1d, options=_SMALL, steps=3000, bp_free_steps=3000),
    "black_scholes": dict(make=problems.black_scholes, options=_SMALL, steps=3000,
                          bp_free_steps=3000),
    "hjb": dict(
        make=lambda: problems.hjb(20), steps=1000, bp_free_steps=200,
        options=dict(hidden_layer_sizes=(128, 128), activation="sin", n_collocation=100),
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


def run_hybridnet(name, setup, scale):
    problem = PROBLEMS[name]
    options = {"n_boundary": 128, "learning_rate": 3e-3, **problem["options"], **SETUPS[setup],
               **problem.get("overrides", {}).get(setup, {})}
    bp_free = options.get("training") == "bp_free"
    steps = options.pop("steps", problem["bp_free_steps" if bp_free else "steps"])
    steps = max(1, int(steps * scale))
    solver = PINNSolver(problem["make"](), max_iter=steps, random_state=0, **options)
    start = time.perf_counter()
    solver.fit()
    row = {"problem": name, "setup": setup,
           "steps": f"{steps} + {solver.lbfgs_iter} L-BFGS" if solver.lbfgs_iter else steps,
           "relative_l2": solver.relative_l2_error(),
           "network_evaluations": solver.n_network_evaluations_,
           "seconds": time.perf_counter() - start,
           "parameters": sum(p.numel() for p in solver.module_.parameters())}
    if name == "hjb":
        row["learned_part_error"] = hjb_learned_part_error(solver)
    return row


DEEPXDE = "DeepXDE (autograd + Adam)"


def run_deepxde(steps):
    """DeepXDE's PyTorch back end on the same Poisson problem, network and optimiser."""
    os.environ.setdefault("DDE_BACKEND", "pytorch")
    try:
        import deepxde as dde
    except ImportError:
        print("DeepXDE is not installed: pip install -e '.[benchmarks]' (comparison skipped)",
              flush=True)
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
    model.compile("adam", lr=3e-3, decay=("step", 1, (1 / 20) ** (1 / steps)))
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


def table(rows):
    lines = ["| problem | set-up | steps | relative L2 | learned-part error | network "
             "evaluations | seconds | parameters | command |",
             "|---|---|---|---|---|---|---|---|---|"]
    for row in rows:
        learned = f"{row['learned_part_error']:.2e}" if "learned_part_error" in row else "-"
        lines.append(f"| {row['problem']} | {row['setup']} | {row['steps']} | "
                     f"{row['relative_l2']:.2e} | {learned} | {row['network_evaluations']:,} | "
                     f"{row['seconds']:.0f} | {row['parameters']:,} | `{row['command']}` |")
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
    order = [(name, setup) for name in PROBLEMS for setup in (*SETUPS, DEEPXDE)]

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
            record(run_hybridnet(name, setup, args.steps_scale))
        if name == "poisson" and not args.no_deepxde:
            row = run_deepxde(max(1, int(PROBLEMS["poisson"]["steps"] * args.steps_scale)))
            if row is not None:
                record(row)
    print((out / "pinn.md").read_text())


if __name__ == "__main__":
    main()
