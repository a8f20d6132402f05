"""How far the projector-splitting integrator drifts during training, and what rebuilds cost.

Trains a 64-128-128-10 network on digits whose 128 x 128 middle map is an MZI, MRR or SLM
device trained in situ with ``surrogate_update="psi"`` (rank 10, 32 probes per update, an
update every 4th step), once per ``surrogate_rebuild_every`` setting, and after every
surrogate update records the surrogate's relative error ``||A - U S V|| / ||A||`` against the
device's true matrix (read from the simulator, not counted as queries) and the best rank-10
error. Prints, per device and setting, the error's mean and maximum over the updates, its value
at the last update, the test accuracy and the surrogate's queries per training step.

Usage::

    python benchmarks/surrogate_drift.py [--epochs 10] [--rebuild none 5 10 20]

writes ``benchmarks/results/surrogate_drift.{json,md}``.
"""

import argparse
import statistics

import torch
from _results import command_line, write_results
from data import digits

from hybridnet import BlackBoxLayer, HybridNetClassifier

WIDTH, RANK = 128, 10


def tracked(layer, errors):
    """Make ``layer``'s surrogate record its error after every update and build."""
    surrogate, box = layer.surrogate, layer.black_box

    def after(method):
        def wrapped(query):
            method(query)
            with torch.no_grad():
                counts = box.n_queries, box.n_calls
                matrix = box(torch.eye(WIDTH), layer.params.detach()).T.double()
                box.n_queries, box.n_calls = counts
                error = (matrix - surrogate.matrix().double()).norm() / matrix.norm()
                best = torch.linalg.svdvals(matrix)[RANK:].norm() / matrix.norm()
            errors.append((float(error), float(best)))
        return wrapped

    surrogate.update = after(surrogate.update)


def run(kind, rebuild_every, epochs, task):
    model = HybridNetClassifier((WIDTH, WIDTH), physical_layer=kind, surrogate_rank=RANK,
                                surrogate_update="psi", surrogate_rebuild_every=rebuild_every,
                                max_iter=epochs, tol=0.0, n_iter_no_change=epochs + 1,
                                random_state=0)
    errors = []
    original = model._initialize

    def initialize(*args, **kwargs):
        original(*args, **kwargs)
        for layer in model.module_.modules():
            if isinstance(layer, BlackBoxLayer):
                tracked(layer, errors)

    model._initialize = initialize
    model.fit(task.X_train, task.y_train)
    layer = next(m for m in model.module_.modules() if isinstance(m, BlackBoxLayer))
    steps = model.n_iter_ * -(-len(task.X_train) // model.batch_size)
    values = [e for e, _ in errors]
    return {"device": kind, "rebuild_every": rebuild_every, "updates": len(errors),
            "error_first": values[0], "error_mean": statistics.mean(values),
            "error_max": max(values), "error_last": values[-1],
            "best_mean": statistics.mean(b for _, b in errors),
            "accuracy": float(model.score(task.X_test, task.y_test)),
            "surrogate_queries_per_step": layer.surrogate.n_queries / steps}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--devices", nargs="+", default=["mzi", "mrr", "slm"])
    parser.add_argument("--rebuild", nargs="+", default=["none", "5", "10", "20"])
    args = parser.parse_args(argv)
    task = digits()
    rows = []
    lines = ["| device | rebuild_every | updates | error: first | mean | max | last | best "
             f"rank-{RANK} | accuracy | surrogate queries / step |", "|" + "---|" * 10]
    for kind in args.devices:
        for setting in args.rebuild:
            rebuild_every = None if setting == "none" else int(setting)
            row = run(kind, rebuild_every, args.epochs, task)
            rows.append(row)
            lines.append(f"| {kind} | {setting} | {row['updates']} | {row['error_first']:.3f} | "
                         f"{row['error_mean']:.3f} | {row['error_max']:.3f} | "
                         f"{row['error_last']:.3f} | {row['best_mean']:.3f} | "
                         f"{row['accuracy']:.4f} | {row['surrogate_queries_per_step']:.1f} |")
            print(lines[-1], flush=True)
    lines.append(f"\nRelative error of the rank-{RANK} surrogate of a {WIDTH} x {WIDTH} device "
                 "after each integrator update while training on digits, against the device's "
                 "true matrix; best: the best rank-10 error at the same parameters (mean).")
    write_results("surrogate_drift", command_line("surrogate_drift.py", argv), rows, lines)


if __name__ == "__main__":
    main()
