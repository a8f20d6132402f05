"""Every way to train with a device, head to head on one chip, with the chip time each spends.

Issue 27's study. Per chip, fabrication error and seed, up to seven methods train the same network
(64-64 ReLU MLP whose middle linear map is the 64 x 64 chip; 30 epochs on digits, batch 64,
the estimators' defaults otherwise), each through the public API:

- ``nominal twin``: trained on the nominal design (``training="calibrated_twin",
  twin="nominal"``: autograd through the simulator, no device query), deployed on the chip;
- ``calibrated twin``: the twin calibrated from 8 x 64 queries first (``training=
  "calibrated_twin"``), then trained without queries and deployed;
- ``physics-aware (nominal)``: every forward pass on the chip, gradients through the nominal
  twin (``training="physics_aware", twin="nominal"``);
- ``physics-aware (calibrated)``: the same through the calibrated twin (``training=
  "physics_aware"``, the default ``twin="calibrated"``);
- ``physics-aware (recalibrated)``: the same, the twin refitted at every epoch's end to the
  chip's answers of that epoch (``recalibrate_every=1``; no extra chip time), and
  ``physics-aware (nominal, recalibrated)``, the same from the nominal twin (no calibration
  query at all);
- ``in situ``: surrogate + zeroth-order from queries only (``training="surrogate"``).

Chips (``--chips``): MZI mesh, microring bank, SLM and U Sigma V (two MZI meshes), each with a
static fabrication error (``--errors``, std in rad) and 1 % detector noise; the MZI-based ones
lose 0.2 dB per MZI (the twin knows) with a 0.05 dB spread (it does not). ``--drift d`` wraps
the chip in ``FaultyBlackBox(drift=d)``: its phases take a random-walk step of std d rad at
every request, during training and testing.

Each row records the test accuracy, the chip's parameter settings, vectors and modelled
seconds during training (``n_device_settings_``, ``n_device_queries_``, ``device_seconds_``:
the simulated chips' nominal model, 100 us a setting and 1 ns a vector for thermo-optic chips,
10 ms and 1 ms for the SLM) and the wall seconds of the fit. Rows are appended to
``results/chip_study/rows.json`` as they finish; a rerun skips the rows already there (resumable),
then rewrites ``chip_study.md`` (means and standard deviations over the seeds) and
``chip_study.png`` (accuracy against modelled chip seconds).

Usage::

    python benchmarks/chip_study.py --chips mzi usv --errors 0.3 --seeds 0 1 2
    python benchmarks/chip_study.py --chips mzi --errors 0.3 --drift 0.001 --seeds 0 1 2
"""

import argparse
import json
import pathlib
import statistics
import time
import warnings

import torch
from _results import command_line, locked
from data import LOADERS

from hybridnet import HybridNetClassifier
from hybridnet.network import DEVICES
from hybridnet.physical import FaultyBlackBox

RESULTS = pathlib.Path(__file__).parent / "results" / "chip_study"
HIDDEN = 64
METHODS = {
    "nominal twin": {"training": "calibrated_twin", "twin": "nominal"},
    "calibrated twin": {"training": "calibrated_twin"},
    "physics-aware (nominal)": {"training": "physics_aware", "twin": "nominal"},
    "physics-aware (calibrated)": {"training": "physics_aware"},
    "physics-aware (recalibrated)": {"training": "physics_aware", "recalibrate_every": 1},
    "physics-aware (nominal, recalibrated)": {"training": "physics_aware", "twin": "nominal",
                                              "recalibrate_every": 1},
    "in situ": {"training": "surrogate"},
}
LABELS = {"mzi": "MZI", "mrr": "MRR", "slm": "SLM", "usv": "USV"}
INSERTION_LOSS = {"insertion_loss": 0.2, "insertion_loss_std": 0.05}


def chip(kind, error, drift, seed):
    """The 64 x 64 chip of one row (the network copies it; its seed fixes its fabrication)."""
    options = {"fabrication_error": error, "detector_noise": 0.01}
    if kind in ("mzi", "usv"):
        options.update(INSERTION_LOSS)
    device = DEVICES[kind](HIDDEN, HIDDEN, seed=seed, **options)
    return FaultyBlackBox(device, drift=drift, seed=seed) if drift else device


def run_row(task, kind, error, drift, method, seed, epochs):
    model = HybridNetClassifier((HIDDEN, HIDDEN), physical_layer=chip(kind, error, drift, seed),
                                max_iter=epochs, tol=0.0, n_iter_no_change=epochs + 1,
                                random_state=seed, **METHODS[method])
    start = time.perf_counter()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model.fit(task.X_train, task.y_train)
    seconds = time.perf_counter() - start
    layer = model._device_layers()[0]
    twin = getattr(layer, "twin", None)
    return {"accuracy": float(model.score(task.X_test, task.y_test)),
            "settings": int(model.n_device_settings_), "vectors": int(model.n_device_queries_),
            "chip_seconds": float(model.device_seconds_), "fit_seconds": seconds,
            "calibration_vectors": int(model.n_calibration_queries_),
            "calibration_error": None if twin is None else getattr(twin, "calibration_error",
                                                                   None),
            "warnings": sorted({str(w.message)[:120] for w in caught})}


def key(row):
    return (row["dataset"], row["chip"], row["error"], row["drift"], row["method"], row["seed"],
            row["epochs"])


def summary(rows):
    """Mean and standard deviation over seeds per (dataset, chip, error, drift, method)."""
    groups = {}
    for row in rows:
        groups.setdefault(key(row)[:5] + (row["epochs"],), []).append(row)
    table = []
    for group, members in sorted(groups.items(), key=lambda item: (
            item[0][:4], list(METHODS).index(item[0][4]))):
        accuracy = [m["accuracy"] for m in members]
        table.append({"dataset": group[0], "chip": group[1], "error": group[2],
                      "drift": group[3], "method": group[4], "epochs": group[5],
                      "seeds": sorted(m["seed"] for m in members),
                      "accuracy": statistics.mean(accuracy),
                      "accuracy_std": statistics.pstdev(accuracy),
                      **{name: statistics.mean(m[name] for m in members)
                         for name in ("settings", "vectors", "chip_seconds", "fit_seconds")}})
    return table


def markdown(table, commands):
    lines = ["Written by `benchmarks/chip_study.py` (its docstring states the set-up). Test "
             "accuracy, mean ± std over the seeds listed; chip settings, vectors and modelled "
             "chip seconds of training (calibration included); wall seconds of the fit on a "
             "shared 2-core machine (one torch thread).", "",
             "| data | chip | error (rad) | drift (rad / request) | method | seeds | accuracy | "
             "chip settings | vectors | chip s | settings vs in situ | wall s |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    in_situ = {tuple(r[k] for k in ("dataset", "chip", "error", "drift")): r for r in table
               if r["method"] == "in situ"}
    for r in table:
        reference = in_situ.get(tuple(r[k] for k in ("dataset", "chip", "error", "drift")))
        ratio = ("-" if reference is None or not reference["settings"]
                 else f"{r['settings'] / reference['settings']:.3f}")
        lines.append(f"| {r['dataset']} | {LABELS[r['chip']]} | {r['error']} | {r['drift']} | "
                     f"{r['method']} | {len(r['seeds'])} | {r['accuracy']:.4f} ± "
                     f"{r['accuracy_std']:.4f} | {r['settings']:,.0f} | {r['vectors']:,.0f} | "
                     f"{r['chip_seconds']:.3g} | {ratio} | {r['fit_seconds']:.0f} |")
    lines += ["", "Commands:", ""] + [f"- `{c}`" for c in sorted(commands)]
    return "\n".join(lines) + "\n"


def plot(table, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cells = sorted({tuple(r[k] for k in ("dataset", "chip", "error", "drift")) for r in table})
    columns = min(5, len(cells))
    rows = -(-len(cells) // columns)
    fig, axes = plt.subplots(rows, columns, figsize=(3.6 * columns, 3.0 * rows + 0.6),
                             squeeze=False, sharex=True, sharey=True)
    markers = dict(zip(METHODS, "os^vPXD", strict=True))
    colors = dict(zip(METHODS, plt.rcParams["axes.prop_cycle"].by_key()["color"], strict=False))
    for ax, cell in zip(axes.flat, cells, strict=False):  # the grid may have spare axes
        for r in table:
            if tuple(r[k] for k in ("dataset", "chip", "error", "drift")) != cell:
                continue
            # A method that spends no chip time sits at the left edge, 1e-4 s.
            ax.errorbar(max(r["chip_seconds"], 1e-4), r["accuracy"], yerr=r["accuracy_std"],
                        marker=markers[r["method"]], color=colors[r["method"]],
                        linestyle="none", label=r["method"])
        dataset, kind, error, drift = cell
        ax.set_xscale("log")
        ax.set_title(f"{dataset}, {LABELS[kind]}, {error} rad" + (f", drift {drift}" if drift
                                                                   else ""), fontsize=9)
        ax.set_ylim(0, 1)
    for ax in axes.flat[len(cells):]:
        ax.set_visible(False)
    for column in range(columns):  # the lowest panel in use of each column
        ax = axes[(len(cells) - 1 - column) // columns, column]
        ax.xaxis.set_tick_params(labelbottom=True)
        ax.set_xlabel("modelled chip seconds of training")
    for ax in axes[:, 0]:
        ax.set_ylabel("test accuracy")
    handles = [plt.Line2D([], [], marker=markers[m], color=colors[m], linestyle="none",
                          label=m) for m in METHODS]
    fig.legend(handles=handles, loc="lower center", ncol=len(METHODS), fontsize=8)
    fig.tight_layout(rect=(0, 0.6 / (3.0 * rows + 0.6), 1, 1))
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--dataset", default="digits", choices=["digits", "mnist"])
    parser.add_argument("--n-train", type=int, default=None, help="training samples (MNIST)")
    parser.add_argument("--chips", nargs="+", default=list(LABELS), choices=list(LABELS))
    parser.add_argument("--errors", nargs="+", type=float, default=[0.0, 0.1, 0.2, 0.3])
    parser.add_argument("--drift", type=float, default=0.0)
    parser.add_argument("--methods", nargs="+", default=list(METHODS), choices=list(METHODS))
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", default=str(RESULTS))
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    command = command_line("chip_study.py", argv)
    task = LOADERS[args.dataset]() if args.n_train is None else LOADERS[args.dataset](
        n_train=args.n_train)
    out = pathlib.Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    path = out / "rows.json"
    for kind in args.chips:
        for error in args.errors:
            for seed in args.seeds:
                for method in args.methods:
                    row = {"dataset": task.name, "chip": kind, "error": error,
                           "drift": args.drift, "method": method, "seed": seed,
                           "epochs": args.epochs, "n_train": len(task.X_train)}
                    rows = json.loads(path.read_text()) if path.exists() else []
                    if any(key(done) == key(row) for done in rows):
                        continue
                    row.update(run_row(task, kind, error, args.drift, method, seed,
                                       args.epochs))
                    row["command"] = command
                    with locked(out):  # other chips' runs may append side by side
                        rows = json.loads(path.read_text()) if path.exists() else []
                        path.write_text(json.dumps(rows + [row], indent=1))
                    print(f"{task.name} {LABELS[kind]} {error} rad drift {args.drift} "
                          f"{method} seed {seed}: {row['accuracy']:.4f}, "
                          f"{row['settings']:,} settings, {row['chip_seconds']:.3g} chip s, "
                          f"{row['fit_seconds']:.0f} s", flush=True)
    rows = json.loads(path.read_text())
    table = summary(rows)
    (out / "chip_study.md").write_text(markdown(table, {r["command"] for r in rows}))
    plot(table, out / "chip_study.png")


if __name__ == "__main__":
    main()
