"""Estimators on scikit-learn's real data sets: all-digital, digital twin and in-situ hybrids.

For breast_cancer and digits (HybridNetClassifier, test accuracy) and diabetes
(HybridNetRegressor, test R^2): a stratified (classification) 75/25 split per seed,
standardised inputs, default hyperparameters except those named below, several seeds.

Usage::

    python benchmarks/sklearn_datasets.py [--seeds 0 1 2] [--out benchmarks/results]

Writes ``sklearn_datasets.json`` and ``sklearn_datasets.md`` under ``--out`` and prints the
table (mean +- std over seeds, mean device queries and fit seconds).
"""

import argparse
import json
import pathlib
import statistics

import torch
from sklearn.datasets import load_breast_cancer, load_diabetes, load_digits
from sklearn.model_selection import train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from hybridnet import HybridNetClassifier, HybridNetRegressor

NETWORKS = {
    "all-digital": dict(physical_layer=None),
    "MZI digital twin": dict(physical_layer="mzi", training="backprop"),
    "MZI in situ": dict(physical_layer="mzi"),
    "MRR in situ": dict(physical_layer="mrr"),
    "SLM in situ": dict(physical_layer="slm"),
}
# Diabetes has 442 samples and overfits a 64-64 network without early stopping.
DATASETS = {
    "breast_cancer": (load_breast_cancer, HybridNetClassifier, {}),
    "digits": (load_digits, HybridNetClassifier, {}),
    "diabetes": (load_diabetes, HybridNetRegressor, {"early_stopping": True, "max_iter": 200}),
}


def run(dataset, network, seed):
    loader, estimator_class, options = DATASETS[dataset]
    X, y = loader(return_X_y=True)
    stratify = y if estimator_class is HybridNetClassifier else None
    X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.25, stratify=stratify,
                                                        random_state=seed)
    model = make_pipeline(StandardScaler(), estimator_class(
        random_state=seed, **options, **NETWORKS[network]))
    model.fit(X_train, y_train)
    return {"dataset": dataset, "network": network, "seed": seed,
            "score": float(model.score(X_test, y_test)), "epochs": model[-1].n_iter_,
            "device_queries": model[-1].n_device_queries_, "seconds": model[-1].fit_time_}


def table(rows):
    lines = ["| data set (metric) | network | score mean +- std | epochs | device queries | "
             "fit seconds |", "|---|---|---|---|---|---|"]
    for dataset in DATASETS:
        metric = "R^2" if DATASETS[dataset][1] is HybridNetRegressor else "accuracy"
        for network in NETWORKS:
            runs = [r for r in rows if r["dataset"] == dataset and r["network"] == network]
            scores = [r["score"] for r in runs]
            spread = statistics.stdev(scores) if len(scores) > 1 else 0.0
            mean = lambda key, runs=runs: statistics.mean(r[key] for r in runs)  # noqa: E731
            lines.append(f"| {dataset} ({metric}) | {network} | {statistics.mean(scores):.4f} "
                         f"+- {spread:.4f} | {mean('epochs'):.0f} | {mean('device_queries'):,.0f}"
                         f" | {mean('seconds'):.1f} |")
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--out", default="benchmarks/results")
    args = parser.parse_args(argv)
    torch.set_num_threads(min(torch.get_num_threads(), 2))
    rows = []
    for dataset in DATASETS:
        for network in NETWORKS:
            for seed in args.seeds:
                rows.append(run(dataset, network, seed))
                print(json.dumps(rows[-1]), flush=True)
    out = pathlib.Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "sklearn_datasets.json").write_text(json.dumps(rows, indent=1))
    markdown = table(rows)
    (out / "sklearn_datasets.md").write_text(
        "# Estimators on scikit-learn data sets\n\nCommand: `python benchmarks/sklearn_datasets.py"
        f" --seeds {' '.join(map(str, args.seeds))}`\n\n{markdown}\n")
    print(markdown)


if __name__ == "__main__":
    main()
