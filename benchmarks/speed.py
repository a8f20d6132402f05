"""Seconds per epoch of in-situ hybrids as a ratio to the all-digital network, same run; the
cost of a coordinate-wise (CGE) step over a 64-mode mesh; the BP-free hybrid fit on digits.

Three parts (``--parts``), each measured in one run so that only ratios taken side by side are
reported (the machines are shared and noisy):

- ``epochs``: a plain PyTorch loop over the all-digital network (Adam, batch 64, nothing
  else), then HybridNetClassifier at its default settings (``--dataset`` digits, 75/25 split,
  or MNIST with ``--n-train`` samples): all-digital, then in-situ MZI, MRR, SLM and U Sigma V,
  and in situ over a device that costs nothing (a fixed 64 x 64 product with the mesh's
  4,032 parameters: the estimator's own share of an in-situ epoch), each trained for
  ``--epochs`` epochs, timed from ``history_`` (per-epoch wall time, the first epoch dropped:
  it includes the surrogate's initial build), in turns for ``--repeats`` rounds, the median
  taken. Writes ``speed.md`` (digits) or ``speed_<dataset>.md``.
- ``cge``: the network of ``HybridNetClassifier(training="bp_free", tt_rank=4)`` on digits
  (64 -> TT 64 -> 64 x 64 MZI mesh -> TT 10), batch 32: one CGE step over the mesh's 4,032
  phases (central differences, 8,064 losses) with the mesh answering from its column structure
  (the engine), the same step with every setting propagated through the whole mesh (the
  structure switched off: what a simulator without it pays), and one first-order step
  (autograd through the simulator, Adam). Medians of ``--repeats`` rounds taken in turns.
  Writes ``speed_cge.md``.
- ``fit``: ``HybridNetClassifier(training="bp_free", zo_estimator="hybrid", tt_rank=4,
  random_state=0).fit`` on digits at its defaults: wall time, epochs, test accuracy. Writes
  ``speed_bp_free.md``.
- ``pinn``: DeepXDE's Burgers example (its 2-20-20-20-1 tanh network, 2,540 + 80 + 160 points,
  Adam 1e-3, ``--pinn-steps`` steps; DeepXDE 1.15 on PyTorch, the ``benchmarks`` extra)
  against ``PINNSolver(problems.burgers_1d(), hidden_layer_sizes=(20, 20, 20),
  n_collocation=2540, n_boundary=80, max_iter=<the same steps>, random_state=0)``, in turns
  (who goes first alternates) for ``--repeats`` rounds: wall time from building the model to
  the end of training on each side, and the relative L2 error of each on the 10,000 reference
  points of ``benchmarks/pinn.py``. Torch's optimizers import ``torch._dynamo`` on first use
  (about 2 s); that happens before either side is timed. Writes ``speed_pinn.md``.

Usage::

    python benchmarks/speed.py [--epochs 5] [--repeats 3]
    python benchmarks/speed.py --parts cge --repeats 7
    python benchmarks/speed.py --parts fit
    python benchmarks/speed.py --parts pinn --threads 1 [--pinn-steps 15000]
"""

import argparse
import copy
import json
import pathlib
import statistics
import time
import warnings

import numpy as np
import torch
from _results import command_line
from data import LOADERS

from hybridnet import HybridNetClassifier
from hybridnet.optim import BatchedLoss
from hybridnet.physical import FunctionBlackBox

NETWORKS = {"all-digital": None, "MZI in situ": "mzi", "MRR in situ": "mrr",
            "SLM in situ": "slm", "USV in situ": "usv",
            "in situ, a device that costs nothing": "costless"}
CGE_BATCH = 32
CGE_STEP = 1e-3


def costless_device(width=64, n_params=64 * 63):
    """A 64 x 64 linear device with the MZI mesh's 4,032 parameters whose answer is one small
    product, ``(x @ M^T) * (1 + 0.01 cos(params[:64]))``: in-situ training over it costs what
    the estimator itself costs (surrogate upkeep, zeroth-order directions, Adam, checks)."""
    matrix = torch.randn(width, width, generator=torch.Generator().manual_seed(0)) / width**0.5

    def answer(x, params):  # x (settings, batch, n), params (settings, n_params)
        gains = 1 + 0.01 * torch.cos(params[:, None, :width])
        return (x @ matrix.to(x.dtype).T) * gains.to(x.dtype)

    return FunctionBlackBox(answer, width, width, init_params=torch.zeros(n_params),
                            batched=True, linear=True, name="costless")


def seconds_per_epoch(physical_layer, X, y, epochs):
    if physical_layer == "costless":
        physical_layer = costless_device()
    model = HybridNetClassifier(physical_layer=physical_layer, max_iter=epochs, tol=0.0,
                                n_iter_no_change=epochs + 1, random_state=0)
    model.fit(X, y)
    seconds = model.history_[1:, "seconds"]
    queries = model.history_[:, "device_queries"]
    return statistics.median(seconds), queries[-1] - queries[0]


def plain_loop_seconds(X, y, epochs):
    """Seconds per epoch of a plain PyTorch loop: the all-digital estimator's network and
    optimizer (Adam at its default rate, batch 64, shuffled), nothing else."""
    model = HybridNetClassifier(physical_layer=None, max_iter=1, random_state=0).fit(X, y)
    network, X, y = model.module_, torch.as_tensor(X), torch.as_tensor(y)
    optimizer = torch.optim.Adam(network.parameters(), lr=model.learning_rate)
    generator = torch.Generator().manual_seed(0)
    seconds = []
    for _ in range(epochs):
        start = time.perf_counter()
        for batch in torch.randperm(len(X), generator=generator).split(model.batch_size):
            optimizer.zero_grad()
            torch.nn.functional.cross_entropy(network(X[batch]), y[batch]).backward()
            optimizer.step()
        seconds.append(time.perf_counter() - start)
    return statistics.median(seconds[1:])


def epochs_part(args, command, out):
    task = LOADERS[args.dataset](n_train=args.n_train)
    timings = {name: [] for name in ["plain PyTorch loop", *NETWORKS]}
    queries = {"plain PyTorch loop": 0}
    for _ in range(args.repeats):
        timings["plain PyTorch loop"].append(plain_loop_seconds(task.X_train, task.y_train,
                                                                args.epochs))
        for name, device in NETWORKS.items():
            seconds, queries[name] = seconds_per_epoch(device, task.X_train, task.y_train,
                                                       args.epochs)
            timings[name].append(seconds)
    digital = statistics.median(timings["all-digital"])
    rows = [{"network": name, "seconds_per_epoch": statistics.median(values),
             "ratio_to_digital": statistics.median(values) / digital,
             "device_queries_per_epoch": queries[name] / (args.epochs - 1)}
            for name, values in timings.items()]
    lines = [f"# Seconds per epoch on {task.name} (default settings, "
             f"{len(task.X_train):,} training samples)\n\nCommand: `{command}`\n",
             "| network | seconds per epoch | ratio to all-digital | device queries per epoch |",
             "|---|---|---|---|"]
    lines += [f"| {row['network']} | {row['seconds_per_epoch']:.3f} | "
              f"{row['ratio_to_digital']:.1f} | {row['device_queries_per_epoch']:,.0f} |"
              for row in rows]
    suffix = "" if args.dataset == "digits" else f"_{args.dataset}"
    write(out, f"speed{suffix}", command, rows, lines)


def cge_part(args, command, out):
    task = LOADERS["digits"]()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # CGE's query-cost warning
        model = HybridNetClassifier(training="bp_free", zo_estimator="cge", tt_rank=4,
                                    max_iter=1, batch_size=CGE_BATCH, random_state=0)
        model.fit(task.X_train[:CGE_BATCH], task.y_train[:CGE_BATCH])
    network = model.module_
    layer = model._device_layers()[0]
    x = torch.as_tensor(task.X_train[:CGE_BATCH])
    y = torch.as_tensor(task.y_train[:CGE_BATCH])
    loss = torch.nn.functional.cross_entropy
    coordinates = torch.arange(layer.params.numel())
    structured = layer.black_box
    plain = copy.deepcopy(structured)
    plain._site_layout = lambda: None  # the same mesh, its structure unknown
    plain.__dict__.pop("_layout_cache", None)

    def cge_step(device):
        def step():
            layer.black_box = device
            closure = BatchedLoss(network, loss, x, y)
            for sign in (1, -1):
                closure.evaluate_coordinates([layer.params], coordinates, sign * CGE_STEP)
            layer.black_box = structured
        return step

    optimizer = torch.optim.Adam(network.parameters(), 1e-3)

    def first_order():
        with layer.using(structured, training="backprop"):
            optimizer.zero_grad()
            loss(network(x), y).backward()
            optimizer.step()

    steps = {"first-order (autograd through the simulator, Adam)": first_order,
             "CGE over the mesh's phases, from its column structure": cge_step(structured),
             "CGE over the mesh's phases, every setting propagated": cge_step(plain)}
    for step in steps.values():  # warm-up: allocations, the first unitary
        step()
    before = layer.params.detach().clone()
    timings = {name: [] for name in steps}
    for _ in range(args.repeats):
        for name, step in steps.items():
            start = time.perf_counter()
            step()
            timings[name].append(time.perf_counter() - start)
    assert not torch.equal(before, layer.params)  # the first-order steps trained
    reference = statistics.median(timings[next(iter(steps))])
    rows = [{"step": name, "seconds": statistics.median(values),
             "ratio_to_first_order": statistics.median(values) / reference}
            for name, values in timings.items()]
    lines = [f"# One step of the BP-free digits network at batch {CGE_BATCH} (64 x 64 MZI mesh, "
             f"{len(coordinates):,} phases)\n\nCommand: `{command}`\n",
             "| step | seconds | x first-order |", "|---|---|---|"]
    lines += [f"| {row['step']} | {row['seconds']:.4f} | {row['ratio_to_first_order']:.1f} |"
              for row in rows]
    write(out, "speed_cge", command, rows, lines)


def fit_part(args, command, out):
    task = LOADERS["digits"]()
    model = HybridNetClassifier(training="bp_free", zo_estimator="hybrid", tt_rank=4,
                                random_state=0)
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model.fit(task.X_train, task.y_train)
    seconds = time.perf_counter() - start
    row = {"seconds": seconds, "epochs": model.n_iter_,
           "switched_at": model._switch.switched_at,
           "accuracy": float(model.score(task.X_test, task.y_test)),
           "loss_evaluations": int(model._optimizer.n_evaluations),
           "threads": torch.get_num_threads()}
    lines = ["# BP-free hybrid fit on digits at its defaults\n",
             f"`HybridNetClassifier(training=\"bp_free\", zo_estimator=\"hybrid\", tt_rank=4, "
             f"random_state=0)`, default 64 x 64 MZI mesh. Command: `{command}`\n",
             "| wall seconds | epochs | switched to CGE after epoch | test accuracy | "
             "loss evaluations | torch threads |", "|---|---|---|---|---|---|",
             f"| {seconds:.0f} | {row['epochs']} | {row['switched_at']} | "
             f"{row['accuracy']:.4f} | {row['loss_evaluations']:,} | {row['threads']} |"]
    write(out, "speed_bp_free", command, [row], lines)


def pinn_part(args, command, out):
    from pinn import _deepxde, burgers_test_points, deepxde_burgers

    from hybridnet import PINNSolver
    from hybridnet.pinn import problems

    dde = _deepxde()
    if dde is None:
        return
    X, exact = burgers_test_points()

    def error(predicted):
        return float(np.linalg.norm(predicted.ravel() - exact) / np.linalg.norm(exact))

    def run_deepxde():
        start = time.perf_counter()
        model = deepxde_burgers(dde)
        model.compile("adam", lr=1e-3)
        model.train(iterations=args.pinn_steps, display_every=1000, verbose=0)
        return time.perf_counter() - start, error(model.predict(X.float().numpy()))

    def run_pinnsolver():
        start = time.perf_counter()
        model = PINNSolver(problems.burgers_1d(), hidden_layer_sizes=(20, 20, 20),
                           n_collocation=2540, n_boundary=80, max_iter=args.pinn_steps,
                           random_state=0).fit()
        return time.perf_counter() - start, error(model.predict(X.numpy()))

    torch.optim.Adam([torch.zeros(1, requires_grad=True)])  # the lazy import, untimed
    sides = {"DeepXDE": run_deepxde, "PINNSolver": run_pinnsolver}
    rows = []
    for round_ in range(args.repeats):
        for side in list(sides)[::1 if round_ % 2 == 0 else -1]:
            seconds, relative_l2 = sides[side]()
            rows.append({"round": round_, "side": side, "steps": args.pinn_steps,
                         "seconds": seconds, "relative_l2": relative_l2,
                         "threads": torch.get_num_threads()})
            print(rows[-1], flush=True)
    lines = ["# PINNSolver against DeepXDE on DeepXDE's Burgers example: wall time\n",
             f"Command: `{command}`. Each round runs both sides one after the other (who goes "
             "first alternates); seconds from building the model to the end of training.\n",
             "| round | DeepXDE s | PINNSolver s | PINNSolver / DeepXDE | relative L2 (DeepXDE / "
             "PINNSolver) |", "|---|---|---|---|---|"]
    for round_ in range(args.repeats):
        pair = {row["side"]: row for row in rows if row["round"] == round_}
        theirs, ours = pair["DeepXDE"], pair["PINNSolver"]
        lines.append(f"| {round_} | {theirs['seconds']:.1f} | {ours['seconds']:.1f} | "
                     f"{ours['seconds'] / theirs['seconds']:.3f} | "
                     f"{theirs['relative_l2']:.3g} / {ours['relative_l2']:.3g} |")
    totals = {side: sum(row["seconds"] for row in rows if row["side"] == side)
              for side in sides}
    lines.append(f"\nAll rounds: PINNSolver / DeepXDE = "
                 f"{totals['PINNSolver'] / totals['DeepXDE']:.3f} ({args.pinn_steps:,} Adam "
                 f"steps a side, {rows[0]['threads']} torch thread(s)).")
    write(out, "speed_pinn", command, rows, lines)


def write(out, name, command, rows, lines):
    (out / f"{name}.json").write_text(json.dumps({"command": command, "rows": rows}, indent=1))
    (out / f"{name}.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--parts", nargs="+", default=["epochs"],
                        choices=["epochs", "cge", "fit", "pinn"])
    parser.add_argument("--dataset", default="digits", choices=["digits", "mnist"])
    parser.add_argument("--n-train", type=int, default=None)
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--pinn-steps", type=int, default=15000)
    parser.add_argument("--out", default="benchmarks/results")
    args = parser.parse_args(argv)
    torch.set_num_threads(min(torch.get_num_threads(), args.threads))
    command = command_line("speed.py", argv)
    out = pathlib.Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    parts = {"epochs": epochs_part, "cge": cge_part, "fit": fit_part, "pinn": pinn_part}
    for part in args.parts:
        parts[part](args, command, out)


if __name__ == "__main__":
    main()
