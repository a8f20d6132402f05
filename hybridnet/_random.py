"""Random streams that are reproducible, picklable and device-agnostic.

Every random draw of the engine (zeroth-order directions, surrogate probes, simulated device
noise) comes from a CPU ``torch.Generator`` owned by the object that needs it, then moves to the
tensor's device. One CPU stream gives the same numbers on CPU and CUDA, pickles, and leaves the
global torch RNG alone; the draws are small (directions, probes, noise), so the copy is cheap.
"""

import torch


def make_generator(seed=None):
    """Return a CPU generator seeded by ``seed``, or from torch's global RNG when ``seed`` is None.

    Seeding from the global RNG when no seed is given keeps ``torch.manual_seed`` in charge of
    reproducibility, as plain PyTorch users expect.
    """
    generator = torch.Generator()
    if seed is None:
        seed = int(torch.randint(0, 2**62, (1,)).item())
    generator.manual_seed(int(seed))
    return generator


def randn(shape, generator, *, dtype, device):
    """Standard normal draws of ``shape`` from ``generator``, on ``device``."""
    return torch.randn(shape, generator=generator, dtype=dtype).to(device)


def rand(shape, generator, *, dtype, device):
    """Uniform draws on [0, 1) of ``shape`` from ``generator``, on ``device``."""
    return torch.rand(shape, generator=generator, dtype=dtype).to(device)
