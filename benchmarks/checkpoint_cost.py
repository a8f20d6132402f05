"""What checkpointing costs a PINN fit: the default ``problems.poisson_2d()`` fit (2,000
steps, one thread) without checkpoints, with ``checkpoint_every=100`` and with
``checkpoint_every=1``, in CPU seconds of the same run.

Usage::

    python benchmarks/checkpoint_cost.py
"""

import os
import tempfile
import time

import torch

from hybridnet import PINNSolver
from hybridnet.pinn import problems


def main():
    torch.set_num_threads(1)
    for every in (None, 100, 1):
        with tempfile.TemporaryDirectory() as folder:
            start = time.process_time()
            PINNSolver(problems.poisson_2d(), random_state=0,
                       checkpoint=None if every is None else os.path.join(folder, "fit.hnet"),
                       checkpoint_every=every or 1).fit()
            seconds = time.process_time() - start
        print(f"checkpoint_every={every}: {seconds:.1f} CPU s")


if __name__ == "__main__":
    main()
