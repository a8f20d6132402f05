"""``hybridnet.calibrate`` on the mismatch study's U Sigma V chip: probes against random queries.

The chip of ``suite.py --studies mismatch`` at its largest error: a 64 x 64 ``USVMesh`` with
0.3 rad phase offsets, 0.2 dB +- 0.05 dB losses per MZI and 1 % detector noise, calibrated from
its nominal twin with ``calibrate``'s defaults and ``strategy`` "probes" (the default for this
chip) or "random" (Gaussian queries, the earlier default; with its default 512 queries and with
2,048, the probes' count). Per chip seed: the device queries,
the relative RMS error of the twin on the calibration queries before and after the fit, its
error at 8 fresh settings (64 Gaussian inputs each) against the noise-free chip, nominal and
calibrated, and the seconds the calibration took (one thread). Rows are merged into
``benchmarks/results/usv_calibration/usv_calibration.{json,md}``, so seeds can run apart.

Usage::

    python benchmarks/usv_calibration.py [--seeds 0 1 2] [--strategies probes random]
                                         [--random-queries 512 2048]
"""

import argparse
import copy
import pathlib
import time
import warnings

import torch
from _results import command_line, merge_rows
from suite import chip_options

from hybridnet import calibrate
from hybridnet.physical import USVMesh

SIZE, ERROR, DETECTOR_NOISE = 64, 0.3, 0.01
OUT = pathlib.Path(__file__).parent / "results" / "usv_calibration"


def held_out_error(chip, twin, seed=12345, n_settings=8, batch=64):
    """Relative error of ``twin`` against the noise-free ``chip`` at fresh settings."""
    generator = torch.Generator().manual_seed(seed)
    settings = torch.stack([chip.initial_params(generator) for _ in range(n_settings)]).double()
    x = torch.randn(n_settings, batch, chip.in_features, generator=generator,
                    dtype=torch.float64)
    clean = copy.deepcopy(chip).double()
    clean.detector_noise = 0.0
    with torch.no_grad():
        truth = clean(x, settings)
        return float((copy.deepcopy(twin).double()(x, settings) - truth).norm() / truth.norm())


def run(seed, strategy, n_queries=None):
    chip = USVMesh(SIZE, SIZE, seed=seed, **chip_options("usv", ERROR, DETECTOR_NOISE))
    nominal = chip.nominal_twin()
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # a stuck fit warns; the table shows it
        twin = calibrate(chip, nominal, n_queries, seed=seed, strategy=strategy)
    seconds = time.perf_counter() - start
    return {"seed": seed, "strategy": strategy, "queries": twin.calibration_queries,
            "error_before": twin.calibration_error_before, "error": twin.calibration_error,
            "held_out_nominal": held_out_error(chip, nominal),
            "held_out": held_out_error(chip, twin), "seconds": seconds}


def table(rows):
    lines = ["| strategy | chip seed | device queries | calibration error, before -> after | "
             "error at fresh settings, nominal -> calibrated | seconds |",
             "|---|---|---|---|---|---|"]
    for row in rows:
        lines.append(f"| {row['strategy']} | {row['seed']} | {row['queries']:,} | "
                     f"{row['error_before']:.3f} -> {row['error']:.4f} | "
                     f"{row['held_out_nominal']:.3f} -> {row['held_out']:.4f} | "
                     f"{row['seconds']:.0f} |")
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--strategies", nargs="+", default=["probes", "random"],
                        choices=["probes", "random"])
    parser.add_argument("--random-queries", type=int, nargs="+", default=[512, 2048],
                        help="device queries of the random strategy (512: its default)")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    OUT.mkdir(parents=True, exist_ok=True)
    command = command_line("usv_calibration.py", argv)
    runs = [(strategy, n_queries) for strategy in args.strategies
            for n_queries in ([None] if strategy == "probes" else args.random_queries)]
    for strategy, n_queries in runs:
        for seed in args.seeds:
            row = {**run(seed, strategy, n_queries), "command": command}
            print(table([row]).splitlines()[-1], flush=True)
            rows = merge_rows(OUT / "usv_calibration.json", [row],
                              key=lambda r: (r["strategy"], r["queries"], r["seed"]),
                              sort_key=lambda r: (r["strategy"], r["queries"], r["seed"]))
            commands = ", ".join(f"`{c}`" for c in sorted({r["command"] for r in rows}))
            (OUT / "usv_calibration.md").write_text(
                f"Commands: {commands}\n\n{table(rows)}\n")


if __name__ == "__main__":
    main()
