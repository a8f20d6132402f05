"""Random streams that are reproducible, picklable and device-agnostic.

Every random draw of the engine (zeroth-order directions, surrogate probes, simulated device
noise) comes from a CPU ``torch.Generator`` owned by the object that needs it, then moves to the
tensor's device. One CPU stream gives the same numbers on CPU and CUDA, pickles, and leaves the
global torch RNG alone; the draws are small (directions, probes, noise), so the copy is cheap.
"""

import numpy as np
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


def spawn_seeds(seed, n):
    """``n`` independent integer seeds derived from ``seed`` by ``numpy.random.SeedSequence``.

    Every random stream of one object (a device's fabrication offsets and its noise, a layer's
    initialisation, probes and directions, an estimator's batch order) gets its own child seed,
    so no two streams ever draw the same numbers; a plain ``seed + k`` would give a device and
    the layer around it identical streams. ``seed=None`` draws the root from torch's global RNG.

    Parameters
    ----------
    seed : int or None
        Root seed.
    n : int
        Number of seeds.

    Returns
    -------
    list of int
        Seeds in ``[0, 2**63)``.

    Examples
    --------
    >>> a, b = spawn_seeds(0, 2)
    >>> a != b and spawn_seeds(0, 2) == [a, b]
    True
    """
    if seed is None:
        seed = int(torch.randint(0, 2**62, (1,)).item())
    children = np.random.SeedSequence(int(seed)).spawn(n)
    return [int(child.generate_state(1, dtype=np.uint64)[0] >> np.uint64(1))
            for child in children]
