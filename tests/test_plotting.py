"""The learning-curve plot helper."""

import pytest
from sklearn.datasets import load_iris

from hybridnet import HybridNetClassifier

matplotlib = pytest.importorskip("matplotlib")


def test_learning_curves_png_has_a_panel_per_recorded_quantity(tmp_path):
    from hybridnet.plotting import plot_learning_curves

    X, y = load_iris(return_X_y=True)
    options = dict(hidden_layer_sizes=(8, 8), max_iter=3, random_state=0)
    fitted = {"digital": HybridNetClassifier(physical_layer=None, early_stopping=True,
                                             **options).fit(X, y),
              "mrr": HybridNetClassifier(physical_layer="mrr", **options).fit(X, y)}
    path = tmp_path / "curves.png"
    figure = plot_learning_curves(fitted, path, title="iris")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    labels = [axis.get_ylabel() for axis in figure.axes]
    assert labels == ["training loss", "device queries (cumulative)", "validation score"]
    loss_lines = figure.axes[0].get_lines()
    assert [line.get_label() for line in loss_lines] == ["digital", "mrr"]
    assert list(loss_lines[1].get_ydata()) == fitted["mrr"].loss_curve_
    # the device panel only has the estimator that queried a device, in its own colour
    (queries,) = figure.axes[1].get_lines()
    assert queries.get_color() == loss_lines[1].get_color()
