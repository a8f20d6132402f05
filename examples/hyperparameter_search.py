"""Hyperparameter search with GridSearchCV
========================================

Every engine option of :class:`~hybridnet.HybridNetClassifier` is an ordinary scikit-learn
hyperparameter, so :class:`~sklearn.model_selection.GridSearchCV` tunes the surrogate rank,
the zeroth-order estimator and the tensor-train rank of the digital layers like any other.
Here a small network with a 16 x 16 microring (MRR) weight bank trained in situ is searched
on part of scikit-learn's digits, and each candidate's device queries are recorded beside its
accuracy: the cost of a setting on hardware is its queries, not its seconds.
"""

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from sklearn.datasets import load_digits
from sklearn.model_selection import GridSearchCV, train_test_split
from sklearn.preprocessing import StandardScaler

from hybridnet import HybridNetClassifier

# %%
# Data and grid
# -------------
# 900 digits to search on (3 folds of 600 training samples each), the rest to test the
# refitted winner. The grid crosses
#
# - ``surrogate_rank``: rank of the low-rank model of the bank that carries the input
#   gradient through it;
# - ``zo_estimator``: how the rings' tuning parameters get their gradient. ``"rge"``
#   perturbs all of them along ``zo_samples`` random directions per step; ``"cge"`` perturbs
#   every parameter on its own, which costs device queries in proportion to the number of
#   device parameters: two settings (plus and minus) per parameter per step, each queried with the
#   step's batch directions;
# - ``tt_rank``: ``None`` keeps the digital layers dense, an int makes them
#   :class:`~hybridnet.TTLinear` tensor trains of that rank.
X, y = load_digits(return_X_y=True)
X_search, X_test, y_search, y_test = train_test_split(X, y, train_size=900, stratify=y,
                                                      random_state=0)
scaler = StandardScaler().fit(X_search)
X_search, X_test = scaler.transform(X_search), scaler.transform(X_test)

grid = {"surrogate_rank": [2, 8], "zo_estimator": ["rge", "cge"], "tt_rank": [None, 4]}
network = HybridNetClassifier(hidden_layer_sizes=(16, 16), physical_layer="mrr", max_iter=30,
                              random_state=0)


def device_queries(estimator, X, y):
    """A 'score' that reports what the fit cost: its device queries."""
    return estimator.n_device_queries_


search = GridSearchCV(network, grid, cv=3,
                      scoring={"accuracy": "accuracy", "device_queries": device_queries},
                      refit="accuracy")
search.fit(X_search, y_search)

# %%
# Results
# -------
# ``cv_results_`` as a table, best candidate first.
results = pd.DataFrame(search.cv_results_)
results["tt_rank"] = results["param_tt_rank"].map(lambda rank: "dense" if rank is None
                                                  else rank)
table = results.rename(columns={
    "param_surrogate_rank": "surrogate_rank", "param_zo_estimator": "zo_estimator",
    "mean_test_accuracy": "accuracy", "std_test_accuracy": "std",
    "mean_test_device_queries": "device_queries", "mean_fit_time": "fit_seconds",
    "rank_test_accuracy": "rank"})[
    ["rank", "surrogate_rank", "zo_estimator", "tt_rank", "accuracy", "std",
     "device_queries", "fit_seconds"]].sort_values("rank")
print(table.to_string(index=False, float_format="{:.3f}".format))
queries = table.groupby("zo_estimator")["device_queries"].mean()
print(f"cge / rge device queries per fit: {queries['cge'] / queries['rge']:.1f}x")
print(f"best: {search.best_params_}, cross-validated accuracy {search.best_score_:.4f}, "
      f"test accuracy of the refitted model {search.score(X_test, y_test):.4f}")

# %%
# Accuracy against device queries
# -------------------------------
# One bar per candidate (the error bars are the spread over the folds), and what each costs
# in queries on a log scale.
labels = [f"rank {rank}, {estimator}, TT {tt}" for rank, estimator, tt in
          zip(results["param_surrogate_rank"], results["param_zo_estimator"],
              results["tt_rank"], strict=True)]
positions = np.arange(len(results))
colours = ["C0" if estimator == "rge" else "C1" for estimator in results["param_zo_estimator"]]
figure, (accuracy_axis, queries_axis) = plt.subplots(1, 2, figsize=(11, 4.2), sharey=True)
accuracy_axis.barh(positions, results["mean_test_accuracy"],
                   xerr=results["std_test_accuracy"], color=colours)
accuracy_axis.set(yticks=positions, yticklabels=labels, xlabel="cross-validated accuracy",
                  xlim=(0, 1))
queries_axis.barh(positions, results["mean_test_device_queries"], color=colours)
queries_axis.set(xscale="log", xlabel="device queries per fit")
figure.suptitle("GridSearchCV over surrogate_rank x zo_estimator x tt_rank (16 x 16 MRR bank)")
figure.tight_layout()
plt.show()
