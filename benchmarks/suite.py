"""The benchmark suite: hybrid networks on image, audio and language data, device mismatch,
noise and quantization, speed, and devices inside a transformer and a CNN.

Studies (each writes ``<study>.json``, ``<study>.md`` and, where it has one, ``<study>.png``
under ``--out``; ``summary.md`` gathers the tables):

- ``accuracy``: per data set, all-digital, the MZI digital twin and in-situ MZI / MRR / SLM
  (several seeds; on digits also the U Sigma V device in situ), then per device a
  surrogate-rank sweep (1, 4, 16, full), 100 zeroth-order samples instead of 10, the
  projector-splitting integrator against the full re-query of the matrix, and the exact ZO
  objective with the surrogate updated on every step (against the defaults
  ``zo_batch_rank=16``, ``surrogate_update_every=4``). Reports accuracy (language: validation
  bits per character), the gap to digital, device queries per step and seconds per epoch as a
  ratio to the digital network of the same run.
- ``mismatch``: digits with MZI, MRR, SLM and U Sigma V chips that carry a static
  fabrication error (std 0 to 0.3 rad), detector noise and (MZI-based ones) insertion loss
  with an unknown spread; (a) trained on the nominal digital twin and deployed on the chip,
  (b) trained in situ on the chip, (c) trained on a twin calibrated with a few queries
  (``training="calibrated_twin"``), with the device queries of each.
- ``noise``: in-situ accuracy on digits against detector noise and against phase bits.
- ``speed``: seconds per epoch of a plain PyTorch loop and of in-situ MZI / MRR / SLM / U Sigma
  V against all-digital on digits at default settings, timed in turns (see ``speed.py``).
- ``architectures``: devices inside a character-level transformer (Shakespeare) and a small
  CNN (Fashion-MNIST, MNIST), see ``architectures.py``.

Usage::

    python benchmarks/suite.py --quick      # under 10 minutes on 2 cores
    python benchmarks/suite.py              # the full suite (about 35 minutes on 2 cores)
    python benchmarks/suite.py --studies mismatch --datasets digits fsdd

A data set whose package is missing is reported as skipped (with the install command) in the
console and in the tables.
"""

import argparse
import json
import math
import pathlib
import statistics
import time

import architectures
import numpy as np
import speed
import torch
from _results import command_line
from data import LOADERS, MissingData
from sklearn.metrics import log_loss
from torch import nn

from hybridnet import BlackBoxLayer, HybridNetClassifier
from hybridnet.network import DEVICES

DEVICE_NAMES = {"mzi": "MZI", "mrr": "MRR", "slm": "SLM"}
HIDDEN = 64  # width of the hidden layers, so every device is 64 x 64 (the estimators' default)

# Per scale: training-set size and epochs per data set, seeds of the core set-ups, which data
# sets get the sweeps, and the grids of the mismatch and noise studies.
SCALES = {
    "quick": {
        "n_train": {"digits": None, "mnist": 2000, "fashion_mnist": 2000, "fsdd": 1200,
                    "shakespeare": 8000},
        "epochs": {"digits": 10, "mnist": 2, "fashion_mnist": 2, "fsdd": 5, "shakespeare": 1},
        "seeds": [0], "sweep_datasets": ["digits"], "sweep_ranks": [4, HIDDEN],
        "mzi_zo100_datasets": ["digits"], "usv_datasets": ["digits"],
        "errors": [0.0, 0.3], "mismatch_epochs": 10, "mismatch_seeds": [0],
        "detector_noise": [0.0, 0.1], "phase_bits": [6], "noise_epochs": 10,
        "speed": ["--epochs", "3", "--repeats", "1"],
    },
    "full": {
        "n_train": {"digits": None, "mnist": 12000, "fashion_mnist": 12000, "fsdd": None,
                    "shakespeare": 48000},
        "epochs": {"digits": 30, "mnist": 8, "fashion_mnist": 8, "fsdd": 30, "shakespeare": 2},
        "seeds": [0, 1, 2], "sweep_datasets": ["digits", "mnist", "fashion_mnist", "fsdd",
                                               "shakespeare"],
        "sweep_ranks": [1, 4, 16, HIDDEN],
        # 100 ZO samples cost 10x a step; on an MZI mesh only the small data sets afford it.
        "mzi_zo100_datasets": ["digits", "fsdd"],
        # The general-matrix U Sigma V device: two 64-mode meshes, twice the MZI's cost.
        "usv_datasets": ["digits"],
        "errors": [0.0, 0.05, 0.1, 0.2, 0.3], "mismatch_epochs": 30, "mismatch_seeds": [0, 1, 2],
        "detector_noise": [0.0, 0.01, 0.03, 0.1], "phase_bits": [8, 6, 4], "noise_epochs": 30,
        "speed": ["--epochs", "6", "--repeats", "3"],
    },
}
SEEDS_FOR_LARGE_SETS = 1  # MNIST, Fashion-MNIST and Shakespeare: one seed (cost)


# ----------------------------------------------------------------------------- set-ups

def core_setups():
    """(name, device kind or None, layer options) of the set-ups every data set runs."""
    return [("all-digital", None, {}),
            ("MZI digital twin", "mzi", {"training": "backprop"}),
            ("MZI in situ", "mzi", {}),
            ("MRR in situ", "mrr", {}),
            ("SLM in situ", "slm", {})]


def sweep_setups(ranks, zo100_on_mzi):
    """Rank sweep, 100 ZO samples, the integrator instead of the full re-query, and the exact
    ZO objective with a surrogate updated on every step."""
    setups = []
    for kind, label in DEVICE_NAMES.items():
        setups += [(f"{label} rank {'full' if r == HIDDEN else r}", kind, {"surrogate_rank": r})
                   for r in ranks]
        if kind != "mzi" or zo100_on_mzi:
            setups.append((f"{label} 100 ZO samples", kind, {"zo_samples": 100}))
        setups.append((f"{label} integrator (psi), rank 16", kind,
                       {"surrogate_rank": 16, "surrogate_update": "psi"}))
        # The exact ZO objective and a surrogate brought up to date on every step: what the
        # defaults zo_batch_rank=16 and surrogate_update_every=4 save, and what they cost.
        setups.append((f"{label} exact ZO objective, surrogate every step", kind,
                       {"zo_batch_rank": None, "surrogate_update_every": 1}))
    return setups


class CharMLP(nn.Module):
    """Next-character model: embedding of the context, then an MLP block whose second linear map
    is ``middle`` (a device or a plain linear map), then the output layer."""

    def __init__(self, vocabulary_size, context, middle, embedding=8):
        super().__init__()
        self.embed = nn.Embedding(vocabulary_size, embedding)
        self.block_in = nn.Linear(context * embedding, 2 * HIDDEN)
        self.middle = middle
        self.out = nn.Linear(HIDDEN, vocabulary_size)

    def forward(self, x):
        h = self.embed(x.long()).flatten(1)
        h = torch.relu(self.block_in(h))
        return self.out(torch.relu(self.middle(h)))


def make_estimator(task, kind, options, seed, epochs, device_options=None):
    """A HybridNetClassifier for one set-up; language tasks get a CharMLP module."""
    options = dict(options)
    training = options.pop("training", "surrogate")
    common = dict(max_iter=epochs, tol=0.0, n_iter_no_change=epochs + 1, random_state=seed)
    if task.kind != "language":
        return HybridNetClassifier((HIDDEN, HIDDEN), physical_layer=kind, training=training,
                                   device_options=device_options, **options, **common)
    in_features = 2 * HIDDEN
    torch.manual_seed(seed)  # the digital layers' initialisation
    if kind is None:
        middle = nn.Linear(in_features, HIDDEN)
    else:
        device = DEVICES[kind](in_features, HIDDEN, seed=seed, **(device_options or {}))
        options.setdefault("surrogate_rank", HIDDEN // 2)
        middle = BlackBoxLayer(device, training=training, seed=seed, **options)
    module = CharMLP(len(task.vocabulary), task.X_train.shape[1], middle)
    return HybridNetClassifier(module=module, **common)


def score(model, task):
    """Test accuracy, or for language the test cross-entropy in bits per character."""
    if task.kind != "language":
        return float(model.score(task.X_test, task.y_test))
    proba = model.predict_proba(task.X_test)
    return float(log_loss(task.y_test, proba, labels=model.classes_) / math.log(2))


def fit_and_measure(task, kind, options, seed, epochs, device_options=None):
    model = make_estimator(task, kind, options, seed, epochs, device_options)
    start = time.perf_counter()
    model.fit(task.X_train, task.y_train)
    fit_seconds = time.perf_counter() - start
    steps = model.n_iter_ * math.ceil(len(task.X_train) / model.batch_size)
    seconds = model.history_[1:, "seconds"] or model.history_[:, "seconds"]
    devices = [layer for layer in model.module_.modules() if isinstance(layer, BlackBoxLayer)]
    surrogate_queries = sum(layer.surrogate.n_queries for layer in devices
                            if layer.surrogate is not None)
    return {"score": score(model, task), "seconds_per_epoch": statistics.median(seconds),
            "device_queries": model.n_device_queries_,
            "fit_seconds": fit_seconds, "queries_per_step": model.n_device_queries_ / steps,
            "surrogate_queries_per_step": surrogate_queries / steps,
            # One exact re-measurement of a device matrix costs one query per device input.
            "full_requery_queries": sum(layer.in_features for layer in devices) or None}


# ----------------------------------------------------------------------------- studies

def load(name, scale):
    loader = LOADERS[name]
    n_train = SCALES[scale]["n_train"][name]
    return loader() if n_train is None else loader(n_train=n_train)


def accuracy_study(datasets, scale, log):
    config = SCALES[scale]
    rows, skipped = [], []
    for name in datasets:
        try:
            task = load(name, scale)
        except MissingData as error:
            log(f"SKIPPED {name}: {error}")
            skipped.append({"key": name, "dataset": name, "reason": str(error)})
            continue
        epochs = config["epochs"][name]
        seeds = config["seeds"]
        if name in ("mnist", "fashion_mnist", "shakespeare"):
            seeds = seeds[:SEEDS_FOR_LARGE_SETS]
        runs = [(setup, seeds) for setup in core_setups()]
        if name in config["usv_datasets"]:
            runs.append((("USV in situ", "usv", {}), seeds))
        if name in config["sweep_datasets"]:
            zo100_on_mzi = name in config["mzi_zo100_datasets"]
            runs += [(setup, seeds[:1])
                     for setup in sweep_setups(config["sweep_ranks"], zo100_on_mzi)]
        for (setup, kind, options), run_seeds in runs:
            results = []
            for seed in run_seeds:
                results.append(fit_and_measure(task, kind, options, seed, epochs))
                log(f"{task.name:13s} {setup:34s} seed {seed}: {results[-1]['score']:.4f} "
                    f"({results[-1]['fit_seconds']:.0f} s)")
            scores = [r["score"] for r in results]
            rows.append({
                "key": name, "dataset": task.name, "kind": task.kind, "setup": setup,
                "n_train": len(task.X_train), "epochs": epochs, "seeds": run_seeds,
                "scores": scores, "score_mean": float(np.mean(scores)),
                "score_std": float(np.std(scores)),
                "seconds_per_epoch": statistics.median(r["seconds_per_epoch"] for r in results),
                "queries_per_step": results[0]["queries_per_step"],
                "surrogate_queries_per_step": results[0]["surrogate_queries_per_step"],
                "full_requery_queries": results[0]["full_requery_queries"]})
        digital = next(r for r in rows if r["dataset"] == task.name
                       and r["setup"] == "all-digital")
        for row in rows:
            if row["dataset"] == task.name:
                sign = -1 if task.kind == "language" else 1  # bits: lower is better
                row["gap_to_digital"] = sign * (digital["score_mean"] - row["score_mean"]) + 0.0
                row["time_ratio"] = row["seconds_per_epoch"] / digital["seconds_per_epoch"]
    return rows, skipped


# The mismatch study's chips: the three devices and the U Sigma V mesh; the MZI-based ones lose
# 0.2 dB per MZI (nominal, which the twin knows) with a 0.05 dB spread (which it does not).
MISMATCH_DEVICES = {**DEVICE_NAMES, "usv": "USV"}
INSERTION_LOSS = {"insertion_loss": 0.2, "insertion_loss_std": 0.05}


def chip_options(kind, error, detector_noise):
    """Device options of a chip with fabrication error ``error``."""
    options = {"fabrication_error": error, "detector_noise": detector_noise}
    if kind in ("mzi", "usv"):
        options.update(INSERTION_LOSS)
    return options


def nominal_options(kind):
    """Device options of the nominal twin: the design, no fabrication error or noise."""
    return {"insertion_loss": INSERTION_LOSS["insertion_loss"]} if kind in ("mzi", "usv") else None


def deploy_on(model, options):
    """Swap every device of a fitted twin for the chip with the same seed and ``options``."""
    for layer in model.module_.modules():
        if isinstance(layer, BlackBoxLayer):
            box = layer.black_box
            layer.black_box = type(box)(box.in_features, box.out_features, seed=box.seed,
                                        **options)
    return model


def mismatch_study(scale, log, detector_noise=0.01):
    """Per device and fabrication error: the nominal twin deployed on the chip, in-situ
    training, and training on a calibrated twin, with the device queries each spent."""
    config = SCALES[scale]
    task = load("digits", scale)
    epochs, seeds = config["mismatch_epochs"], config["mismatch_seeds"]
    rows = []
    for kind, label in MISMATCH_DEVICES.items():
        twins = [make_estimator(task, kind, {"training": "backprop"}, seed, epochs,
                                nominal_options(kind)).fit(task.X_train, task.y_train)
                 for seed in seeds]
        for error in config["errors"]:
            options = chip_options(kind, error, detector_noise)
            row = {"device": label, "fabrication_error": error, "detector_noise": detector_noise,
                   "chip_options": options, "seeds": seeds, "epochs": epochs}
            row["twin_deployed"] = [score(deploy_on(twin, options), task) for twin in twins]
            row["twin_deployed_queries"] = 0
            for setup, layer_options in (("in_situ", {}),
                                         ("calibrated_twin", {"training": "calibrated_twin"})):
                results = [fit_and_measure(task, kind, layer_options, seed, epochs, options)
                           for seed in seeds]
                row[setup] = [r["score"] for r in results]
                row[f"{setup}_queries"] = float(np.mean([r["device_queries"] for r in results]))
            for setup in ("twin_deployed", "in_situ", "calibrated_twin"):
                row[f"{setup}_mean"] = float(np.mean(row[setup]))
                row[f"{setup}_std"] = float(np.std(row[setup]))
            rows.append(row)
            log(f"mismatch {label} error {error}: twin->device {row['twin_deployed_mean']:.4f}, "
                f"in situ {row['in_situ_mean']:.4f} ({row['in_situ_queries']:,.0f} queries), "
                f"calibrated twin {row['calibrated_twin_mean']:.4f} "
                f"({row['calibrated_twin_queries']:,.0f} queries)")
    return rows


def noise_study(scale, log):
    config = SCALES[scale]
    task = load("digits", scale)
    epochs = config["noise_epochs"]
    grid = [("detector_noise", value, {"detector_noise": value})
            for value in config["detector_noise"]]
    grid += [("phase_bits", bits, {"phase_bits": bits}) for bits in config["phase_bits"]]
    rows = []
    for kind, label in DEVICE_NAMES.items():
        for knob, value, device_options in grid:
            result = fit_and_measure(task, kind, {}, 0, epochs, device_options)
            rows.append({"device": label, "knob": knob, "value": value,
                         "accuracy": result["score"]})
            log(f"noise {label} {knob}={value}: {result['score']:.4f}")
    return rows


# ----------------------------------------------------------------------------- reports

def accuracy_table(rows, skipped):
    lines = ["| data | set-up | score | gap to digital | device queries / step | of which "
             "surrogate | full re-query | s / epoch | x digital |",
             "|---|---|---|---|---|---|---|---|---|"]
    for row in rows:
        spread = f" ± {row['score_std']:.4f}" if len(row["seeds"]) > 1 else ""
        unit = " bpc" if row["kind"] == "language" else ""
        requery = "-" if row["full_requery_queries"] is None else row["full_requery_queries"]
        lines.append(f"| {row['dataset']} | {row['setup']} | {row['score_mean']:.4f}{spread}"
                     f"{unit} | {row['gap_to_digital']:+.4f} | {row['queries_per_step']:,.0f} | "
                     f"{row['surrogate_queries_per_step']:,.0f} | {requery} | "
                     f"{row['seconds_per_epoch']:.3f} | {row['time_ratio']:.1f} |")
    lines += [f"\nSkipped {s['dataset']}: {s['reason']}" for s in skipped]
    lines.append("\nScore: test accuracy (mean ± std over seeds where several ran); Shakespeare: "
                 "test cross-entropy in bits per character, lower is better. Gap: how much worse "
                 "than all-digital (positive = worse). Full re-query: the queries one exact "
                 "re-measurement of the device matrix costs (its input width).")
    return "\n".join(lines)


def mismatch_table(rows):
    lines = ["| device | fabrication error (rad) | twin, deployed on device | trained in situ "
             "| in-situ queries | calibrated twin | its queries (share of in situ) |",
             "|---|---|---|---|---|---|---|"]
    for r in rows:
        share = r["calibrated_twin_queries"] / r["in_situ_queries"]
        lines.append(f"| {r['device']} | {r['fabrication_error']} | "
                     f"{r['twin_deployed_mean']:.4f} ± {r['twin_deployed_std']:.4f} | "
                     f"{r['in_situ_mean']:.4f} ± {r['in_situ_std']:.4f} | "
                     f"{r['in_situ_queries']:,.0f} | {r['calibrated_twin_mean']:.4f} ± "
                     f"{r['calibrated_twin_std']:.4f} | {r['calibrated_twin_queries']:,.0f} "
                     f"({share:.1%}) |")
    lines.append("\nDigits, detector noise 0.01; MZI and USV chips lose 0.2 dB per MZI (the "
                 "twin knows this nominal loss) with a 0.05 dB spread (it does not). Queries: "
                 "device queries of the whole fit (the twin deployed spends none); the "
                 "calibrated twin's are its calibration, 8 settings x 64 inputs per device.")
    return "\n".join(lines)


def noise_table(rows):
    lines = ["| device | knob | value | test accuracy |", "|---|---|---|---|"]
    lines += [f"| {r['device']} | {r['knob']} | {r['value']} | {r['accuracy']:.4f} |"
              for r in rows]
    return "\n".join(lines)


def plot_accuracy(rows, path):
    import matplotlib.pyplot as plt

    core = [name for name, _, _ in core_setups()][1:]
    datasets = list(dict.fromkeys(r["dataset"] for r in rows))
    fig, ax = plt.subplots(figsize=(8, 3.5))
    width = 0.8 / len(core)
    for i, setup in enumerate(core):
        gaps = [next((r["gap_to_digital"] for r in rows
                      if r["dataset"] == d and r["setup"] == setup), np.nan) for d in datasets]
        ax.bar(np.arange(len(datasets)) + i * width, gaps, width, label=setup)
    ax.axhline(0, color="black", linewidth=0.8)
    ax.set_xticks(np.arange(len(datasets)) + 0.4 - width / 2, datasets)
    ax.set_ylabel("gap to digital\n(accuracy; bits/char)")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def plot_mismatch(rows, path):
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(MISMATCH_DEVICES), figsize=(13, 3.2), sharey=True)
    for ax, label in zip(axes, MISMATCH_DEVICES.values(), strict=True):
        mine = [r for r in rows if r["device"] == label]
        errors = [r["fabrication_error"] for r in mine]
        for key, name in (("twin_deployed", "twin, deployed"), ("in_situ", "in situ"),
                          ("calibrated_twin", "calibrated twin")):
            ax.errorbar(errors, [r[f"{key}_mean"] for r in mine],
                        [r[f"{key}_std"] for r in mine], marker="o", capsize=3, label=name)
        ax.set_title(label)
        ax.set_xlabel("fabrication error (rad)")
    axes[0].set_ylabel("test accuracy (digits)")
    axes[0].legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def plot_noise(rows, path):
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(8, 3.2), sharey=True)
    for ax, knob in zip(axes, ("detector_noise", "phase_bits"), strict=True):
        for label in DEVICE_NAMES.values():
            mine = [r for r in rows if r["device"] == label and r["knob"] == knob]
            ax.plot([r["value"] for r in mine], [r["accuracy"] for r in mine], marker="o",
                    label=label)
        ax.set_xlabel(knob.replace("_", " "))
    axes[0].set_ylabel("in-situ test accuracy (digits)")
    axes[0].legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def merge_accuracy(path, rows, skipped, command):
    """Merge this run's rows into ``path``: the data sets run now replace their old rows, the
    others keep theirs, so one data set can be re-run alone. Every row keeps its command."""
    for row in rows + skipped:
        row["command"] = command
    old = json.loads(path.read_text()) if path.exists() else {"rows": [], "skipped": []}
    rerun = {row["key"] for row in rows + skipped}
    order = {key: index for index, key in enumerate(LOADERS)}
    merged = {part: sorted([row for row in old[part] if row["key"] not in rerun] + new,
                           key=lambda row: order[row["key"]])
              for part, new in (("rows", rows), ("skipped", skipped))}
    path.write_text(json.dumps(merged, indent=1))
    return merged["rows"], merged["skipped"]


def write(out, study, command, rows, table, plot):
    (out / f"{study}.json").write_text(json.dumps({"command": command, "rows": rows}, indent=1))
    (out / f"{study}.md").write_text(f"Command: `{command}`\n\n{table}\n")
    plot(rows, out / f"{study}.png")


STUDIES = ("accuracy", "mismatch", "noise", "speed", "architectures")
SECTIONS = [("accuracy", "Accuracy, queries and time per data set"),
            ("mismatch", "Fabrication mismatch (digits, detector noise 0.01)"),
            ("noise", "Detector noise and phase quantization (digits, in situ)"),
            ("speed", "Seconds per epoch at default settings (digits)"),
            ("architectures", "Devices in a transformer and a CNN")]


def write_summary(out, scale):
    """Gather the study tables and plots present in ``out`` into ``summary.md``."""
    parts = [f"# Benchmark suite ({scale})\n"]
    for study, title in SECTIONS:
        if (out / f"{study}.md").exists():
            body = (out / f"{study}.md").read_text()
            if body.startswith("# "):  # speed.py's table has a title of its own
                body = body.split("\n", 1)[1]
            parts.append(f"## {title}\n\n{body.strip()}\n")
            if (out / f"{study}.png").exists():
                parts.append(f"![{title}]({study}.png)\n")
    (out / "summary.md").write_text("\n".join(parts))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="the under-10-minute suite")
    parser.add_argument("--studies", nargs="+", default=list(STUDIES), choices=list(STUDIES))
    parser.add_argument("--datasets", nargs="+", default=list(LOADERS), choices=list(LOADERS))
    parser.add_argument("--out", help="results folder; default benchmarks/results/suite "
                        "(suite-quick with --quick)")
    args = parser.parse_args(argv)
    torch.set_num_threads(min(torch.get_num_threads(), 2))
    scale = "quick" if args.quick else "full"
    out = pathlib.Path(args.out or f"benchmarks/results/suite{'-quick' if args.quick else ''}")
    out.mkdir(parents=True, exist_ok=True)
    command = command_line("suite.py", argv)
    started = time.perf_counter()

    def log(message):
        print(f"[{time.perf_counter() - started:6.0f} s] {message}", flush=True)

    if "accuracy" in args.studies:
        rows, skipped = merge_accuracy(out / "accuracy.json",
                                       *accuracy_study(args.datasets, scale, log), command)
        commands = "`, `".join(dict.fromkeys(row["command"] for row in rows + skipped))
        (out / "accuracy.md").write_text(f"Commands: `{commands}`\n\n"
                                         f"{accuracy_table(rows, skipped)}\n")
        if rows:
            plot_accuracy(rows, out / "accuracy.png")
    if "mismatch" in args.studies:
        rows = mismatch_study(scale, log)
        write(out, "mismatch", command, rows, mismatch_table(rows), plot_mismatch)
    if "noise" in args.studies:
        rows = noise_study(scale, log)
        write(out, "noise", command, rows, noise_table(rows), plot_noise)
    if "speed" in args.studies:
        speed.main(SCALES[scale]["speed"] + ["--out", str(out)])
    if "architectures" in args.studies:
        architectures.main((["--quick"] if args.quick else []) + ["--out", str(out)])
    write_summary(out, scale)
    log(f"done; tables in {out / 'summary.md'}")


if __name__ == "__main__":
    main()
