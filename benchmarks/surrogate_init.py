"""Relative error of the surrogate's initialisations on 128 x 128 devices (issue 15).

For MRR, SLM and MZI devices (seed 0, initial parameters from seed 1) at rank 10, builds
``LowRankSurrogate`` with ``init="svd"`` (n queries) and ``init="randomized"`` (r + 10 + 32
queries) and prints ``||A - U S V|| / ||A||`` and the queries spent.

Usage::

    python benchmarks/surrogate_init.py
"""

import torch

from hybridnet.physical import SLM, MRRBank, MZIMesh
from hybridnet.surrogate import LowRankSurrogate

WIDTH, RANK = 128, 10


def error(device, init):
    params = device.initial_params(torch.Generator().manual_seed(1)).double()
    matrix = device(torch.eye(WIDTH, dtype=torch.float64), params).T
    surrogate = LowRankSurrogate(WIDTH, WIDTH, RANK, init=init, update="psi",
                                 generator=torch.Generator().manual_seed(0)).double()
    surrogate.build(lambda inputs: device(inputs, params))
    # build also records the first update's probes (r + 32 queries)
    return ((matrix - surrogate.matrix()).norm() / matrix.norm()).item(), surrogate.n_queries


def main():
    for make in (MRRBank, SLM, MZIMesh):
        device = make(WIDTH, WIDTH, seed=0)
        row = {init: error(device, init) for init in ("svd", "randomized")}
        print(f"{make.__name__}: " + ", ".join(f"{init} {e:.3f} ({q} queries with the first "
                                               f"update's probes)" for init, (e, q) in row.items()))


if __name__ == "__main__":
    main()
