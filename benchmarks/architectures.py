"""Physical layers inside real architectures (issue 16): a character-level transformer on
Shakespeare and a small CNN on Fashion-MNIST and MNIST, all-digital against in-situ devices.

- ``lm``: :class:`hybridnet.models.CharTransformer` (4 pre-norm blocks, width 128, 4 heads,
  context 64), trained 3,000 steps with a loss at every position on random windows of the
  training 90 % of the text (AdamW, one-cycle schedule, batch 32); every block's MLP down-projection
  (512 -> 128) is the device, with a full-rank (128) surrogate. Score: test bits per character
  over 256 windows of the last 10 % of the text, every position.
  MZI set-ups are left out of it: a 512-mode mesh is too slow to simulate here.
- ``lm_narrow``: all-digital and the MZI set-ups with a 128 -> 128 MLP (``mlp_ratio=1``),
  against their own all-digital row.
- ``cnn``: :class:`hybridnet.models.SmallCNN` (two stages of 32 and 64 channels, hidden 64,
  the device between a LayerNorm and a BatchNorm)
  through ``HybridNetClassifier(module=...)``, 3 epochs of the 60,000 training images, the
  device the classifier's 64 x 64 map (MZI: surrogate rank 32, half the width; the default 10
  left Fashion-MNIST 1.1 points under all-digital).

Per row: score, gap to all-digital, device queries per step, seconds per step and the ratio
to the all-digital row of the same run, and the learning curve (PNG). Rows are merged into
``architectures.json`` of the suite's results folder (``benchmarks/results/suite/``, or
``suite-quick/`` with ``--quick``) as they finish: a stopped run keeps them, rerunning a
set-up replaces its row. The table (``architectures.md``) and plot are rewritten each time;
``suite.py --studies architectures`` runs this script.

Usage::

    python benchmarks/architectures.py --quick                 # small sizes, a few minutes
    python benchmarks/architectures.py --parts lm --setups all-digital "SLM in situ"
"""

import argparse
import json
import math
import pathlib
import time

import torch
from _results import command_line, merge_rows
from data import LOADERS, MissingData, shakespeare_ids

from hybridnet import BlackBoxLayer, HybridNetClassifier, split_parameters
from hybridnet.models import CharTransformer, SmallCNN

RESULTS = pathlib.Path(__file__).parent / "results"  # suite/ or suite-quick/ in it


def log(message):
    print(message, flush=True)
SETUPS = {"all-digital": (None, {}), "SLM in situ": ("slm", {}), "MRR in situ": ("mrr", {}),
          "MZI in situ": ("mzi", {}), "MZI twin": ("mzi", {"training": "backprop"})}
SCALES = {
    "quick": {"lm": dict(width=32, n_layers=2, context=32, steps=300, batch=16, mlp_ratio=4),
              "cnn": dict(n_train=1000, epochs=1, datasets=["fashion_mnist"])},
    # 3,000 steps: 2.2 bpc all-digital in about 12 minutes of one core
    "full": {"lm": dict(width=128, n_layers=4, context=64, steps=3000, batch=32, mlp_ratio=4),
             # 3 epochs of the 60,000 images: one already gives Fashion-MNIST 0.903 all-digital
             "cnn": dict(n_train=None, epochs=3, datasets=["fashion_mnist", "mnist"])},
}
N_TEST_WINDOWS = 256
# A 512-mode MZI mesh (the MLP's 512 -> 128 map) is too slow to simulate here; lm_narrow
# trains the same transformer with a 128 -> 128 MLP map, against its own all-digital row.
NARROW = {"mlp_ratio": 1}
PARTS = ("lm", "lm_narrow", "cnn")
LM_SETUPS = {"lm": ("all-digital", "SLM in situ", "MRR in situ"),
             "lm_narrow": ("all-digital", "MZI in situ", "MZI twin")}


def device_queries(model):
    return sum(layer.device_queries() for layer in model.modules()
               if isinstance(layer, BlackBoxLayer))


def lm_row(setup, config, seed=0, dataset="Shakespeare"):
    """Train the transformer for one set-up; return its row."""
    kind, layer_options = SETUPS[setup]
    # A full-rank surrogate (the map's smaller side): at rank 10 the input gradient through a
    # 512 -> 128 SLM left 2.656 bpc after 1,000 steps, at 32 2.607, at 128 2.540 (digital
    # 2.473, autograd through the simulator 2.510).
    layer_options = {"surrogate_rank": config["width"], **layer_options}
    ids, split, vocabulary = shakespeare_ids()
    ids = torch.as_tensor(ids)
    torch.manual_seed(seed)
    context, batch, steps = config["context"], config["batch"], config["steps"]
    model = CharTransformer(len(vocabulary), context, width=config["width"],
                            n_layers=config["n_layers"], mlp_ratio=config["mlp_ratio"], device=kind,
                            layer_options=layer_options, seed=seed)
    digital, device = split_parameters(model)
    rates = [3e-3, 1e-2][:1 + bool(device)]
    groups = [{"params": digital}] + ([{"params": device, "weight_decay": 0.0}] if device else [])
    optimizer = torch.optim.AdamW(groups, lr=rates[0], weight_decay=0.01)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=rates, total_steps=steps,
                                                   pct_start=0.05)
    batches = torch.Generator().manual_seed(seed)
    offsets = torch.arange(context + 1)
    test = ids[torch.randint(split, len(ids) - context - 1, (N_TEST_WINDOWS,),
                             generator=torch.Generator().manual_seed(1))[:, None] + offsets]

    def loss_of(windows):
        logits = model(windows[:, :-1])
        return torch.nn.functional.cross_entropy(logits.reshape(-1, len(vocabulary)),
                                                 windows[:, 1:].reshape(-1))

    def test_bits():
        model.eval()
        with torch.no_grad():
            total = sum(loss_of(chunk).item() * len(chunk) for chunk in test.split(64))
        model.train()
        return total / len(test) / math.log(2)

    curve, seconds = [], 0.0
    every = max(1, steps // 10)
    for step in range(1, steps + 1):
        windows = ids[torch.randint(0, split - context - 1, (batch,), generator=batches)[:, None]
                      + offsets]
        start = time.perf_counter()
        loss = loss_of(windows)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        schedule.step()
        seconds += time.perf_counter() - start
        if step % every == 0 or step == steps:
            curve.append((step, loss.item() / math.log(2), test_bits()))
            log(f"{dataset} {setup:14s} step {step:5d}: train {curve[-1][1]:.3f} test "
                f"{curve[-1][2]:.3f} bpc ({seconds:.0f} s)")
    return {"part": "lm", "dataset": dataset, "setup": setup, "score": curve[-1][2],
            "unit": "bpc", "steps": steps, "config": config, "seed": seed,
            "queries_per_step": device_queries(model) / steps,
            "seconds_per_step": seconds / steps, "curve": curve}


def cnn_row(dataset, setup, config, seed=0):
    """Train the CNN classifier on one data set for one set-up; return its row."""
    kind, layer_options = SETUPS[setup]
    loader = LOADERS[dataset]
    task = loader() if config["n_train"] is None else loader(n_train=config["n_train"])
    if kind == "mzi":  # a mesh's flat spectrum wants half the width (doc/engine.md)
        layer_options = {"surrogate_rank": 32, **layer_options}
    torch.manual_seed(seed)
    module = SmallCNN((1, 28, 28), device=kind, layer_options=layer_options, seed=seed)
    model = HybridNetClassifier(module=module, max_iter=config["epochs"], tol=0.0,
                                n_iter_no_change=config["epochs"] + 1, random_state=seed)
    model.fit(task.X_train, task.y_train)
    steps = model.n_iter_ * -(-len(task.X_train) // model.batch_size)
    score = float(model.score(task.X_test, task.y_test))
    log(f"cnn {task.name} {setup:14s}: {score:.4f}")
    return {"part": "cnn", "dataset": task.name, "setup": setup, "score": score,
            "unit": "accuracy", "steps": steps, "config": config, "seed": seed,
            "queries_per_step": model.n_device_queries_ / steps,
            "seconds_per_step": sum(model.history_[:, "seconds"]) / steps,
            "curve": [(r["epoch"], r["train_loss"]) for r in model.history_]}


def table(rows):
    lines = ["| data | set-up | score | gap to digital | device queries / step | s / step | "
             "x digital |", "|---|---|---|---|---|---|---|"]
    for row in rows:
        digital = next((r for r in rows if r["dataset"] == row["dataset"]
                        and r["setup"] == "all-digital"), None)
        sign = -1 if row["unit"] == "bpc" else 1  # bits: lower is better
        gap = "-" if digital is None else \
            f"{sign * (digital['score'] - row['score']) + 0.0:+.4f}"
        ratio = "-" if digital is None else \
            f"{row['seconds_per_step'] / digital['seconds_per_step']:.1f}"
        unit = " bpc" if row["unit"] == "bpc" else ""
        lines.append(f"| {row['dataset']} | {row['setup']} | {row['score']:.4f}{unit} | {gap} | "
                     f"{row['queries_per_step']:,.0f} | {row['seconds_per_step']:.3f} | "
                     f"{ratio} |")
    lines.append("\nGap: how much worse than all-digital (positive = worse); seconds per step "
                 "are measured in the same run, on a shared 2-core machine.")
    return "\n".join(lines)


def plot(rows, path):
    import matplotlib.pyplot as plt

    datasets = list(dict.fromkeys(r["dataset"] for r in rows))
    fig, axes = plt.subplots(1, len(datasets), figsize=(4.5 * len(datasets), 3.2),
                             squeeze=False)
    for ax, dataset in zip(axes[0], datasets, strict=True):
        for row in (r for r in rows if r["dataset"] == dataset):
            points = list(zip(*row["curve"], strict=True))
            ax.plot(points[0], points[-1], marker=".", label=row["setup"])
        lm = dataset.startswith("Shakespeare")
        ax.set_xlabel("step" if lm else "epoch")
        ax.set_ylabel("test bits per character" if lm else "training loss")
        ax.set_title(dataset)
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--parts", nargs="+", default=list(PARTS), choices=list(PARTS))
    parser.add_argument("--setups", nargs="+", default=list(SETUPS), choices=list(SETUPS))
    parser.add_argument("--datasets", nargs="+", choices=["fashion_mnist", "mnist"],
                        help="the CNN's data sets; default both (quick: Fashion-MNIST)")
    parser.add_argument("--out", help="results folder; default benchmarks/results/suite "
                        "(suite-quick with --quick)")
    args = parser.parse_args(argv)
    scale = "quick" if args.quick else "full"
    out = pathlib.Path(args.out or RESULTS / f"suite{'-quick' if args.quick else ''}")
    out.mkdir(parents=True, exist_ok=True)
    name = "architectures"
    command = command_line("architectures.py", argv)
    order = {setup: index for index, setup in enumerate(SETUPS)}

    def save(row):
        row["command"] = command
        rows = merge_rows(out / f"{name}.json", [row],
                          key=lambda r: (r["dataset"], r["setup"]),
                          sort_key=lambda r: (r["part"], r["dataset"], order[r["setup"]]))
        commands = ", ".join(f"`{c}`" for c in sorted({r["command"] for r in rows}))
        (out / f"{name}.md").write_text(f"Commands: {commands}\n\n{table(rows)}\n")
        plot(rows, out / f"{name}.png")

    config = SCALES[scale]
    for setup in args.setups:
        for part in ("lm", "lm_narrow"):
            if part in args.parts and setup in LM_SETUPS[part]:
                try:
                    width = config["lm"]["width"]
                    save(lm_row(setup, {**config["lm"], **(NARROW if part == "lm_narrow" else {})},
                                dataset="Shakespeare" if part == "lm" else
                                f"Shakespeare, MLP {width} -> {width}"))
                except MissingData as error:
                    print(f"SKIPPED Shakespeare: {error}")
        if "cnn" in args.parts:
            for dataset in args.datasets or config["cnn"]["datasets"]:
                try:
                    save(cnn_row(dataset, setup, config["cnn"]))
                except MissingData as error:
                    print(f"SKIPPED {dataset}: {error}")
    print(json.dumps({"results": str(out / f"{name}.md")}))


if __name__ == "__main__":
    main()
