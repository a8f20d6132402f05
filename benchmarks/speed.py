"""Seconds per epoch of in-situ hybrids as a ratio to the all-digital network, same run.

HybridNetClassifier at its default settings on scikit-learn's digits (standardised, 75/25
split): all-digital, then in-situ MZI, MRR and SLM, each trained for a fixed number of epochs.
The epochs are timed from ``history_`` (per-epoch wall time), the first epoch dropped (it
includes the surrogate's initial build). Networks are timed in turns, ``--repeats`` rounds,
and the median taken, because the machines are shared and noisy: only ratios measured in the
same run are reported.

Usage::

    python benchmarks/speed.py [--epochs 5] [--repeats 3]

Writes ``speed.json`` / ``speed.md`` under ``benchmarks/results/``.
"""

import argparse
import json
import pathlib
import statistics

import torch
from _results import command_line
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import StandardScaler

from hybridnet import HybridNetClassifier

NETWORKS = {"all-digital": None, "MZI in situ": "mzi", "MRR in situ": "mrr",
            "SLM in situ": "slm"}


def seconds_per_epoch(physical_layer, X, y, epochs):
    model = HybridNetClassifier(physical_layer=physical_layer, max_iter=epochs, tol=0.0,
                                n_iter_no_change=epochs + 1, random_state=0)
    model.fit(X, y)
    seconds = model.history_[1:, "seconds"]
    queries = model.history_[:, "device_queries"]
    return statistics.median(seconds), queries[-1] - queries[0]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", default="benchmarks/results")
    args = parser.parse_args(argv)
    torch.set_num_threads(min(torch.get_num_threads(), 2))
    X, y = load_digits(return_X_y=True)
    X_train, _, y_train, _ = train_test_split(X, y, test_size=0.25, stratify=y, random_state=0)
    X_train = StandardScaler().fit_transform(X_train)
    timings = {name: [] for name in NETWORKS}
    queries = {}
    for _ in range(args.repeats):
        for name, device in NETWORKS.items():
            seconds, queries[name] = seconds_per_epoch(device, X_train, y_train, args.epochs)
            timings[name].append(seconds)
    digital = statistics.median(timings["all-digital"])
    rows = [{"network": name, "seconds_per_epoch": statistics.median(values),
             "ratio_to_digital": statistics.median(values) / digital,
             "device_queries_per_epoch": queries[name] / (args.epochs - 1)}
            for name, values in timings.items()]
    command = command_line("speed.py", argv)
    out = pathlib.Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "speed.json").write_text(json.dumps({"command": command, "rows": rows}, indent=1))
    lines = [f"# Seconds per epoch on digits (default settings)\n\nCommand: `{command}`\n",
             "| network | seconds per epoch | ratio to all-digital | device queries per epoch |",
             "|---|---|---|---|"]
    lines += [f"| {row['network']} | {row['seconds_per_epoch']:.3f} | "
              f"{row['ratio_to_digital']:.1f} | {row['device_queries_per_epoch']:,.0f} |"
              for row in rows]
    (out / "speed.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
