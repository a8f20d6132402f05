"""Plots of training runs (needs the optional matplotlib: ``pip install 'hybridnet[plot]'``)."""


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
    """
    try:
        import matplotlib

        matplotlib.use("Agg", force=False)
        import matplotlib.pyplot as plt
    except ImportError as error:
        raise ImportError("plotting needs matplotlib: pip install 'hybridnet[plot]'") from error
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
    if title:
        figure.suptitle(title)
    figure.tight_layout()
    if path is not None:
        figure.savefig(path, dpi=120)
    return figure
