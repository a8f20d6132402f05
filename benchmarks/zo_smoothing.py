"""The zeroth-order step against phase quantization and noise: what ``zo_smoothing="auto"``
is chosen from.

For 64 x 64 MZI, MRR and SLM devices at their initial phases, a batch of 64 Gaussian inputs and
a Gaussian upstream gradient G, estimates the gradient of ``phi(w) = <G, f(X, w)>`` with one
M = 10 forward-difference RGE (the layer's default) on a device with the given non-ideality,
and prints the mean cosine (over 20 estimates and 3 device seeds) with the exact gradient of
the ideal device (autograd through the simulator), per smoothing step. The last column is the
step ``zo_smoothing="auto"`` picks for that device.

Usage::

    python benchmarks/zo_smoothing.py

writes ``benchmarks/results/zo_smoothing.{json,md}``.
"""

import argparse

import torch
from _results import command_line, write_results

from hybridnet.layers import auto_smoothing
from hybridnet.physical import SLM, MRRBank, MZIMesh
from hybridnet.zeroth_order import zo_gradient

WIDTH, SAMPLES, REPEATS, SEEDS = 64, 10, 20, (0, 1, 2)
STEPS = (1e-3, 3e-3, 1e-2, 3e-2, 0.1, 0.2, 0.4, 0.8)
CONDITIONS = [("clean", {}), ("8 bits", {"phase_bits": 8}), ("6 bits", {"phase_bits": 6}),
              ("4 bits", {"phase_bits": 4}), ("detector 0.01", {"detector_noise": 0.01}),
              ("detector 0.03", {"detector_noise": 0.03}),
              ("detector 0.1", {"detector_noise": 0.1}),
              ("phase noise 0.01", {"phase_noise": 0.01}),
              ("phase noise 0.03", {"phase_noise": 0.03}),
              ("4 bits + detector 0.01", {"phase_bits": 4, "detector_noise": 0.01})]


def mean_cosine(make, options, step):
    cosines = []
    for seed in SEEDS:
        g = torch.Generator().manual_seed(seed)
        ideal, device = make(WIDTH, WIDTH, seed=seed), make(WIDTH, WIDTH, seed=seed, **options)
        params = device.initial_params(g)
        x = torch.randn(WIDTH, WIDTH, generator=g)
        grad_output = torch.randn(WIDTH, WIDTH, generator=g)
        point = params.clone().requires_grad_(True)
        (ideal(x, point) * grad_output).sum().backward()
        truth = point.grad

        def phi(settings, device=device, x=x, grad_output=grad_output):
            return (device(x, settings) * grad_output).sum(dim=(1, 2))

        for _ in range(REPEATS):
            estimate = zo_gradient(phi, params, n_samples=SAMPLES, smoothing=step,
                                   generator=g).gradient
            cosines.append(torch.nn.functional.cosine_similarity(estimate, truth, dim=0))
    return float(torch.stack(cosines).mean())


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.parse_args(argv)
    rows = []
    lines = ["| device | condition | " + " | ".join(f"{s:g}" for s in STEPS) + " | auto |",
             "|---|---|" + "---|" * (len(STEPS) + 1)]
    print("\n".join(lines))
    for make in (MZIMesh, MRRBank, SLM):
        for label, options in CONDITIONS:
            cosines = [mean_cosine(make, options, step) for step in STEPS]
            auto = auto_smoothing(make(WIDTH, WIDTH, seed=0, **options))
            rows.append({"device": make.__name__, "condition": label, "options": options,
                         "steps": STEPS, "cosines": cosines, "auto": auto,
                         "auto_cosine": mean_cosine(make, options, auto)})
            best = max(range(len(STEPS)), key=cosines.__getitem__)
            cells = [f"**{c:.3f}**" if i == best else f"{c:.3f}" for i, c in enumerate(cosines)]
            lines.append(f"| {make.__name__} | {label} | " + " | ".join(cells)
                         + f" | {auto:.3g}: {rows[-1]['auto_cosine']:.3f} |")
            print(lines[-1], flush=True)
    lines.append("\nMean cosine of one M = 10 RGE estimate with the exact gradient, per "
                 "zeroth-order step (best in bold); auto: the step zo_smoothing=\"auto\" picks, "
                 "and its cosine.")
    write_results("zo_smoothing", command_line("zo_smoothing.py", argv), rows, lines)


if __name__ == "__main__":
    main()
