"""Comparing devices: MZI, MRR and SLM layers beside their baselines
=================================================================

The main job: hybrid classifiers with MZI, MRR and SLM layers beside their baselines.

Fits ``HybridNetClassifier`` on scikit-learn's digits (80/20 stratified split, standardised)
as an all-digital network, as the digital twin of an MZI mesh (exact autograd through the
simulator) and in situ with each of an MZI mesh, a microring bank and an SLM, all with the
library's default hyperparameters. Prints test accuracy, device queries and fit time, and
writes the learning curves to a PNG.

Run ``bash dev.sh main`` (or ``python examples/compare_devices.py --help``).
"""

import argparse
import pathlib
import sys

import torch
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from hybridnet import HybridNetClassifier
from hybridnet.plotting import plot_learning_curves

# The folder beside this script; sphinx-gallery runs examples without __file__ but names
# the script in sys.argv[0].
OUTPUT = pathlib.Path(sys.argv[0]).resolve().parent / "output"
CONFIGURATIONS = {
    "all-digital": dict(physical_layer=None),
    "MZI digital twin": dict(physical_layer="mzi", training="backprop"),
    "MZI in situ": dict(physical_layer="mzi"),
    "MRR in situ": dict(physical_layer="mrr"),
    "SLM in situ": dict(physical_layer="slm"),
}


def main(argv=None):
    parser = argparse.ArgumentParser(
        description="Hybrid classifiers with MZI, MRR and SLM layers beside their baselines on "
                    "digits.")
    parser.add_argument("--max-iter", type=int, default=50, help="epochs (default 50)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--plot", default=OUTPUT / "learning_curves.png",
                        help="where to write the learning curves (default examples/output/)")
    args = parser.parse_args(argv)
    torch.set_num_threads(min(torch.get_num_threads(), 2))
    X, y = load_digits(return_X_y=True)
    X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.2, stratify=y,
                                                        random_state=args.seed)
    fitted = {}
    print(f"digits ({len(X_train)} train / {len(X_test)} test), 64-64-[device 64x64]-10, "
          f"{args.max_iter} epochs at most, default hyperparameters")
    print(f"{'network':<18}{'test accuracy':>14}{'device queries':>16}{'fit seconds':>13}")
    for name, options in CONFIGURATIONS.items():
        model = make_pipeline(StandardScaler(), HybridNetClassifier(
            max_iter=args.max_iter, random_state=args.seed, **options))
        model.fit(X_train, y_train)
        estimator = model[-1]
        fitted[name] = estimator
        print(f"{name:<18}{model.score(X_test, y_test):>14.4f}"
              f"{estimator.n_device_queries_:>16,}{estimator.fit_time_:>13.1f}", flush=True)
    path = pathlib.Path(args.plot)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        plot_learning_curves(fitted, path, title="digits: training loss per epoch")
        print(f"learning curves: {path}")
    except ImportError as error:
        print(f"learning curves not written: {error}")


if __name__ == "__main__":
    main()
