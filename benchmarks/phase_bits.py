"""In-situ MZI training at 8 and 4 phase bits, with ``zo_smoothing="auto"`` and the old 1e-3.

Digits (80/20 split, standardised), ``HybridNetClassifier`` with default hyperparameters and a
64 x 64 MZI mesh with a phase DAC of 8 or 4 bits, 30 epochs, seeds 0-5. Prints and writes
(``benchmarks/results/phase_bits.{json,md}``) the test accuracy per seed, its mean and std, and
the gap between 8 and 4 bits per smoothing.

Usage::

    python benchmarks/phase_bits.py [--seeds 0 1 2 3 4 5] [--epochs 30]
"""

import argparse
import statistics

from _results import command_line, write_results
from data import digits

from hybridnet import BlackBoxLayer, HybridNetClassifier

BITS = (8, 4)
SMOOTHINGS = ("auto", 1e-3)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=list(range(6)))
    parser.add_argument("--epochs", type=int, default=30)
    args = parser.parse_args(argv)
    task = digits()
    rows = []
    lines = ["| zo_smoothing | phase bits | step used (rad) | accuracy per seed | mean ± std |",
             "|---|---|---|---|---|"]
    for smoothing in SMOOTHINGS:
        for bits in BITS:
            scores, step = [], None
            for seed in args.seeds:
                model = HybridNetClassifier(
                    physical_layer="mzi", device_options={"phase_bits": bits},
                    zo_smoothing=smoothing, max_iter=args.epochs, tol=0.0,
                    n_iter_no_change=args.epochs + 1, random_state=seed)
                model.fit(task.X_train, task.y_train)
                scores.append(float(model.score(task.X_test, task.y_test)))
                step = next(layer.zo_smoothing for layer in model.module_.modules()
                            if isinstance(layer, BlackBoxLayer))
            row = {"zo_smoothing": smoothing, "phase_bits": bits, "step": step,
                   "seeds": args.seeds, "scores": scores, "mean": statistics.mean(scores),
                   "std": statistics.pstdev(scores)}
            rows.append(row)
            lines.append(f"| {smoothing} | {bits} | {step:.3g} | "
                         + ", ".join(f"{s:.4f}" for s in scores)
                         + f" | {row['mean']:.4f} ± {row['std']:.4f} |")
            print(lines[-1], flush=True)
    lines.append("")
    for smoothing in SMOOTHINGS:
        eight, four = (next(r["mean"] for r in rows
                            if r["zo_smoothing"] == smoothing and r["phase_bits"] == bits)
                       for bits in BITS)
        lines.append(f"- zo_smoothing={smoothing}: 4 bits are {100 * (eight - four):.2f} points "
                     "under 8 bits")
    print("\n".join(lines[-2:]))
    write_results("phase_bits", command_line("phase_bits.py", argv), rows, lines)


if __name__ == "__main__":
    main()
