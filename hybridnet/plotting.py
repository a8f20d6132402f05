"""Plots of training runs and PDE solutions (need the optional matplotlib:
``pip install 'hybridnet[plot]'``)."""

from collections.abc import Mapping

import numpy as np
from sklearn.exceptions import NotFittedError


def _pyplot():
    try:
        import matplotlib

        matplotlib.use("Agg", force=False)
        import matplotlib.pyplot as plt
    except ImportError as error:
        raise ImportError("plotting needs matplotlib: pip install 'hybridnet[plot]'") from error
    return plt


def _finish(figure, path, title):
    """Title, layout and (when ``path`` is given) the PNG of ``figure``; returns it."""
    if title:
        figure.suptitle(title)
    figure.tight_layout()
    if path is not None:
        figure.savefig(path, dpi=120)
    return figure


def plot_learning_curves(estimators, path=None, *, title=None):
    """Plot training loss, device queries and validation score per epoch of fitted estimators.

    One line per estimator; the device-query panel appears when some estimator queried a
    device, the validation panel when some estimator recorded validation scores.

    Parameters
    ----------
    estimators : dict of str to estimator
        Label -> fitted ``HybridNetClassifier`` / ``HybridNetRegressor`` (anything with a
        ``history_``).
    path : str or path-like, optional
        Where to save the figure (PNG by extension); None only returns it.
    title : str, optional
        Figure title.

    Returns
    -------
    matplotlib.figure.Figure

    Examples
    --------
    >>> import matplotlib.pyplot as plt
    >>> from sklearn.datasets import load_iris
    >>> from hybridnet import HybridNetClassifier
    >>> from hybridnet.plotting import plot_learning_curves
    >>> X, y = load_iris(return_X_y=True)
    >>> digital = HybridNetClassifier(hidden_layer_sizes=(8,), max_iter=2, physical_layer=None,
    ...                               random_state=0).fit(X, y)
    >>> figure = plot_learning_curves({"digital": digital})
    >>> len(figure.axes), figure.axes[0].get_ylabel()  # no device, no validation: one panel
    (1, 'training loss')
    >>> plt.close(figure)
    >>> validated = HybridNetClassifier(hidden_layer_sizes=(8,), max_iter=2, physical_layer=None,
    ...                                 early_stopping=True, random_state=0).fit(X, y)
    >>> figure = plot_learning_curves({"digital": digital, "validated": validated})
    >>> [(axis.get_ylabel(), len(axis.lines)) for axis in figure.axes]  # lines per panel
    [('training loss', 2), ('validation score', 1)]
    >>> plt.close(figure)
    """
    if not isinstance(estimators, Mapping):
        raise TypeError("estimators must be a dict of label -> fitted estimator, got "
                        f"{type(estimators).__name__}; for one model pass {{'label': model}}")
    for label, estimator in estimators.items():
        if not hasattr(estimator, "history_"):
            raise NotFittedError(f"estimators[{label!r}] ({type(estimator).__name__}) is not "
                                 "fitted: it has no history_ to plot; call fit first")
    plt = _pyplot()
    histories = {label: estimator.history_ for label, estimator in estimators.items()}
    panels = [("train_loss", "training loss", "log")]
    if any(h and h[-1]["device_queries"] for h in histories.values()):
        panels.append(("device_queries", "device queries (cumulative)", "log"))
    if any(h and "valid_score" in h[-1] for h in histories.values()):
        panels.append(("valid_score", "validation score", "linear"))
    figure, axes = plt.subplots(1, len(panels), figsize=(5 * len(panels), 4), squeeze=False)
    for axis, (key, label, scale) in zip(axes[0], panels, strict=True):
        for index, (name, history) in enumerate(histories.items()):
            if history and key in history[-1] and (key != "device_queries"
                                                   or history[-1][key]):
                # One colour per estimator across all panels.
                axis.plot(history[:, "epoch"], history[:, key], label=name, color=f"C{index}")
        axis.set(xlabel="epoch", ylabel=label, yscale=scale)
    axes[0][0].legend()
    return _finish(figure, path, title)


def plot_solution(solver, path=None, *, axes=(0, 1), at=None, resolution=200, title=None,
                  component=None):
    """Heat maps of a fitted PINN's prediction, the reference solution and their error.

    The maps cover the domain's two coordinates ``axes`` (for a problem in one space
    dimension and time: x across, t up); the other coordinates of a higher-dimensional problem
    are held at ``at``. Without a reference solution (``PDE(solution=None)``) only the
    prediction is drawn.

    Parameters
    ----------
    solver : PINNSolver
        A fitted solver.
    path : str or path-like, optional
        Where to save the figure (PNG by extension); None only returns it.
    axes : tuple of two int, default=(0, 1)
        The coordinates across and up.
    at : sequence of float, optional
        A point of the domain whose other coordinates fix the slice; default the centre of
        the domain's bounding box. Grid points outside the domain are left blank.
    resolution : int, default=200
        Grid points along each axis.
    title : str, optional
        Figure title.
    component : int, optional
        Which output of a system (``PDE(n_outputs=k)``) to draw; required when k > 1, and
        named in the panels' titles.

    Returns
    -------
    matplotlib.figure.Figure
        One panel per map (``"prediction"``, ``"reference"``, ``"|error|"``, each with its
        colour bar); the error panel's title gives the relative L2 error on the grid.

    Examples
    --------
    >>> from hybridnet import PINNSolver
    >>> from hybridnet.pinn import problems
    >>> from hybridnet.plotting import plot_solution
    >>> solver = PINNSolver(problems.heat_1d(), hidden_layer_sizes=(8,), max_iter=5,
    ...                     random_state=0).fit()
    >>> figure = plot_solution(solver, resolution=20)
    >>> [axis.get_title().split(",")[0] for axis in figure.axes[:3]]  # then the colour bars
    ['prediction', 'reference', '|error|']
    """
    from sklearn.utils.validation import check_is_fitted

    check_is_fitted(solver, "module_")
    domain = solver.pde.domain
    n_outputs = solver.pde.n_outputs
    if n_outputs > 1 and component is None:
        raise ValueError(f"the PDE has {n_outputs} outputs: say which to draw with "
                         f"component=0..{n_outputs - 1}")
    if component is not None and component not in range(n_outputs):
        raise ValueError(f"component must be in 0..{n_outputs - 1}, got {component!r}")
    across, up = axes
    if len(set(axes)) != 2 or not all(0 <= axis < domain.dim for axis in axes):
        raise ValueError(f"axes must be two different coordinates in 0..{domain.dim - 1}, "
                         f"got {axes!r}")
    import torch

    lower, upper = domain.bounding_box
    centre = (lower + upper) / 2 if at is None else np.asarray(at, dtype=float)
    if centre.shape != (domain.dim,):
        raise ValueError(f"at must have {domain.dim} coordinates, got {centre.shape}")
    grid = [np.linspace(lower[axis], upper[axis], resolution) for axis in axes]
    mesh = np.meshgrid(*grid)
    X = np.tile(centre, (resolution * resolution, 1))
    X[:, across], X[:, up] = mesh[0].ravel(), mesh[1].ravel()
    # Grid points outside the domain (a hole, beyond a disk's rim) stay blank (NaN).
    inside = domain.inside(torch.as_tensor(X)).numpy()
    shape = (resolution, resolution)

    def on_grid(values):
        full = np.full(len(X), np.nan)
        full[inside] = values
        return full.reshape(shape)

    def chosen(values):
        values = np.asarray(values, dtype=float).reshape(int(inside.sum()), -1)
        return values[:, 0 if component is None else component]

    named = "" if component is None else f" (component {component})"
    prediction = chosen(solver.predict(X[inside]))
    maps = [(f"prediction{named}", on_grid(prediction))]
    if solver.pde.solution is not None:
        exact = chosen(solver.pde.solution(torch.as_tensor(X[inside])))
        relative = np.linalg.norm(prediction - exact) / np.linalg.norm(exact)
        maps += [(f"reference{named}", on_grid(exact)),
                 (f"|error|{named}, relative L2 {relative:.2e}",
                  on_grid(np.abs(prediction - exact)))]
    plt = _pyplot()
    figure, panels = plt.subplots(1, len(maps), figsize=(4.6 * len(maps), 3.8), squeeze=False)
    extent = (grid[0][0], grid[0][-1], grid[1][0], grid[1][-1])
    # The prediction and the reference share a colour scale, so they can be compared by eye.
    shared = (min(np.nanmin(m) for _, m in maps[:2]), max(np.nanmax(m) for _, m in maps[:2]))
    one_space_axis = len(domain.space_axes) == 1
    names = ["t" if axis == domain.time_axis else "x" if one_space_axis else f"x{axis}"
             for axis in axes]
    for index, (axis, (label, values)) in enumerate(zip(panels[0], maps, strict=True)):
        limits = shared if index < 2 else (None, None)
        image = axis.imshow(values, origin="lower", extent=extent, aspect="auto",
                            cmap="viridis" if index < 2 else "magma", vmin=limits[0],
                            vmax=limits[1])
        figure.colorbar(image, ax=axis)
        axis.set(title=label, xlabel=names[0], ylabel=names[1])
    return _finish(figure, path, title)
