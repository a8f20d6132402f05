"""The plot helpers: learning curves, and PDE solution maps."""

import pytest
from sklearn.datasets import load_iris

from hybridnet import HybridNetClassifier
from hybridnet.plotting import plot_solution

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


def test_solution_maps_of_a_system_and_of_a_holed_domain(tmp_path):
    import numpy as np
    import torch

    from hybridnet import PINNSolver
    from hybridnet.pinn import PDE, DirichletBC, Disk, Rectangle

    def exact(x):
        return torch.stack([x[:, 0] * x[:, 1], x[:, 0] + x[:, 1]], dim=1)

    plate = Rectangle([-1, -1], [1, 1]) - Disk([0, 0], 0.5)
    pde = PDE(plate, lambda x, d: [d.laplacian(component=0), d.laplacian(component=1)],
              [DirichletBC(lambda x: x[:, 0] * x[:, 1], component=0),
               DirichletBC(lambda x: x[:, 0] + x[:, 1], component=1)],
              solution=exact, n_outputs=2)
    solver = PINNSolver(pde, hidden_layer_sizes=(8,), max_iter=5, random_state=0).fit()
    with pytest.raises(ValueError, match="2 outputs: say which to draw with component"):
        plot_solution(solver, resolution=10)
    figure = plot_solution(solver, tmp_path / "system.png", resolution=21, component=1)
    assert figure.axes[0].get_title() == "prediction (component 1)"
    image = figure.axes[0].images[0].get_array()
    # the hole is blank: the grid's centre lies in it, a corner on the plate
    assert np.ma.is_masked(image[10, 10]) or np.isnan(image[10, 10])
    assert np.isfinite(image[0, 0])
    assert (tmp_path / "system.png").stat().st_size > 0
