"""How PINNSolver's first-order defaults were chosen: Adam rate x loss balancing (x the
network's initialisation), every case.

Runs ``PINNSolver`` with autograd derivatives on Poisson, heat, Burgers and Black-Scholes at
the PINN benchmark's budget (2 x 64 tanh, 256 interior + 128 points per condition, 3,000
steps) and on Burgers at the budget of DeepXDE's example (2-20-20-20-1 tanh, 2,540 interior + 80
per condition, 15,000 steps), for each Adam rate, ``loss_balancing`` and ``initializer``
given; one thread per run, ``random_state=0``. Writes
``benchmarks/results/pinn_defaults.{json,md}`` (a row per rate, balancing and initializer, a
column per case), keeping rows of runs not repeated.

Usage::

    python benchmarks/pinn_defaults.py [--rates 3e-3 1e-2] [--balancing none auto]
        [--initializers torch glorot_normal] [--seed 0]
"""

import argparse
import itertools
import json
import pathlib
import time

import torch
from _results import command_line, merge_rows

from hybridnet import PINNSolver
from hybridnet.network import INITIALIZERS
from hybridnet.pinn import problems

_BENCHMARK = dict(hidden_layer_sizes=(64, 64), n_collocation=256, n_boundary=128, max_iter=3000)
CASES = {
    "poisson": (problems.poisson_2d, _BENCHMARK),
    "heat": (problems.heat_1d, _BENCHMARK),
    "burgers": (problems.burgers_1d, _BENCHMARK),
    "black_scholes": (problems.black_scholes, _BENCHMARK),
    "burgers, DeepXDE's budget": (problems.burgers_1d, dict(
        hidden_layer_sizes=(20, 20, 20), n_collocation=2540, n_boundary=80, max_iter=15000)),
}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rates", nargs="+", type=float, default=[3e-3, 1e-2])
    parser.add_argument("--balancing", nargs="+", default=["none", "auto"],
                        choices=["none", "auto"])
    parser.add_argument("--initializers", nargs="+", default=["torch"],
                        choices=list(INITIALIZERS))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="benchmarks/results")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    out = pathlib.Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    command = command_line("pinn_defaults.py", argv)
    for rate, balancing, initializer in itertools.product(args.rates, args.balancing,
                                                          args.initializers):
        row = {"learning_rate": rate, "loss_balancing": balancing, "initializer": initializer,
               "seed": args.seed, "errors": {}, "seconds": {}, "command": command}
        for case, (make, options) in CASES.items():
            solver = PINNSolver(make(), learning_rate=rate, loss_balancing=balancing,
                                initializer=initializer, random_state=args.seed, **options)
            start = time.perf_counter()
            solver.fit()
            row["seconds"][case] = time.perf_counter() - start
            row["errors"][case] = solver.relative_l2_error()
            print(json.dumps({"case": case, "learning_rate": rate, "balancing": balancing,
                              "initializer": initializer,
                              "relative_l2": row["errors"][case]}), flush=True)
        rows = merge_rows(out / "pinn_defaults.json", [row], key=_key,
                          sort_key=lambda r: (r["seed"], *_key(r)[:3]))
        lines = ["# PINNSolver defaults: Adam rate x loss balancing x initializer "
                 "(relative L2)", "",
                 "| rate | balancing | initializer | seed | " + " | ".join(CASES)
                 + " | command |", "|---" * (len(CASES) + 5) + "|"]
        lines += [f"| {r['learning_rate']:g} | {r['loss_balancing']} | {_key(r)[2]} | "
                  f"{r['seed']} | " + " | ".join(f"{r['errors'][case]:.3g}" for case in CASES)
                  + f" | `{r['command']}` |" for r in rows]
        (out / "pinn_defaults.md").write_text("\n".join(lines) + "\n")


def _key(row):
    # Rows written before the initializer was a setting ran with torch's initialisation.
    return (row["learning_rate"], row["loss_balancing"], row.get("initializer", "torch"),
            row["seed"])


if __name__ == "__main__":
    main()
