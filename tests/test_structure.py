"""Coordinate-wise requests answered from a mesh's column structure: the same outputs, noise
draws and counts as the settings queried one by one, in float64."""

import pytest
import torch

from hybridnet import BlackBoxLayer
from hybridnet.physical import FunctionBlackBox, MZIMesh, USVMesh

NON_IDEAL = dict(insertion_loss=0.2, insertion_loss_std=0.05, crosstalk=0.1,
                 fabrication_error=0.3, detector_noise=0.01)
SHAPES = [(6, 6), (5, 3), (3, 6), (2, 1), (8, 8)]


def settings_of(params, coordinates, step):
    settings = params.repeat(len(coordinates), 1)
    settings[torch.arange(len(coordinates)), coordinates] += step
    return settings


def no_propagation(device, monkeypatch):
    """Make every whole-mesh propagation of ``device`` fail: the structured answer must not
    need one per setting (building its tables propagates one batch, through _propagate)."""
    def refuse(*args, **kwargs):
        raise AssertionError("propagated every setting")
    monkeypatch.setattr(device, "_transfer", refuse)


def make(kind, shape, options):
    if kind == "usv":
        return USVMesh(*shape, seed=1, **options)
    return MZIMesh(*shape, seed=1, output=kind, **options)


@pytest.mark.parametrize("kind", ["real", "intensity", "usv"])
@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("options", [{}, NON_IDEAL, dict(phase_bits=5, crosstalk=0.2)],
                         ids=["ideal", "lossy-crosstalk-noise", "dac-crosstalk"])
def test_every_phase_moved_matches_the_settings_queried(kind, shape, options, monkeypatch):
    device = make(kind, shape, options)
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(7, device.in_features, generator=generator, dtype=torch.float64)
    params = device.initial_params(generator).double()
    coordinates = torch.arange(device.n_params)  # every column, both phases of every MZI
    state = device.noise_state()
    expected = device(x, settings_of(params, coordinates, 0.3))
    counts = device.n_queries, device.n_settings, device.n_calls
    device.reset_counters()
    device.set_noise_state(state)  # the same detector noise, drawn the same way
    with monkeypatch.context() as patch:
        no_propagation(device, patch)
        moved = device.query_coordinates(x, params, coordinates, 0.3)
    torch.testing.assert_close(moved, expected, rtol=0, atol=1e-12)
    assert (device.n_queries, device.n_settings, device.n_calls) == counts
    assert torch.equal(device.noise_state(), state) == (not options.get("detector_noise"))


@pytest.mark.parametrize("kind", ["real", "usv"])
def test_any_coordinates_in_any_order_and_both_signs(kind, monkeypatch):
    device = make(kind, (6, 4), NON_IDEAL)
    generator = torch.Generator().manual_seed(3)
    x = torch.randn(5, device.in_features, generator=generator, dtype=torch.float64)
    params = device.initial_params(generator).double()
    coordinates = torch.randint(device.n_params, (40,), generator=generator)  # repeats too
    for step in (1e-3, -0.5):
        state = device.noise_state()
        expected = device(x, settings_of(params, coordinates, step))
        device.set_noise_state(state)
        with monkeypatch.context() as patch:
            no_propagation(device, patch)
            moved = device.query_coordinates(x, params, coordinates, step)
        torch.testing.assert_close(moved, expected, rtol=0, atol=1e-12)


def test_a_float32_request_stays_float32_and_close():
    mesh = MZIMesh(16, 16, seed=0, **NON_IDEAL)
    x, params = torch.randn(4, 16), mesh.initial_params()
    coordinates = torch.arange(mesh.n_params)
    state = mesh.noise_state()
    expected = mesh(x, settings_of(params, coordinates, 0.01))
    mesh.set_noise_state(state)
    moved = mesh.query_coordinates(x, params, coordinates, 0.01)
    assert moved.dtype == torch.float32
    torch.testing.assert_close(moved, expected, rtol=0, atol=1e-4)


def test_phase_noise_and_autograd_fall_back_to_the_settings(monkeypatch):
    noisy = MZIMesh(4, 4, seed=0, phase_noise=0.01)
    x, params = torch.randn(3, 4, dtype=torch.float64), noisy.initial_params().double()
    coordinates = torch.arange(noisy.n_params)
    state = noisy.noise_state()
    expected = noisy(x, settings_of(params, coordinates, 0.1))
    noisy.set_noise_state(state)
    torch.testing.assert_close(noisy.query_coordinates(x, params, coordinates, 0.1), expected,
                               rtol=0, atol=0)
    # A differentiable twin: gradients reach the parameters through the settings.
    twin = MZIMesh(4, 4, seed=0)
    params.requires_grad_(True)
    twin.query_coordinates(x, params, coordinates, 0.1).sum().backward()
    assert params.grad is not None and bool(params.grad.abs().sum() > 0)


def test_the_default_builds_the_settings_and_answers_a_copy():
    stored = torch.ones(2, 3, 2)

    def driver(x, params):  # answers a tensor it keeps
        return stored

    box = FunctionBlackBox(driver, 2, 2, init_params=[0.0, 0.0], batched=True)
    moved = box.query_coordinates(torch.ones(3, 2), torch.zeros(2), torch.tensor([0, 1]), 0.5)
    moved.zero_()  # the caller may overwrite the answer
    assert bool((stored == 1).all())
    assert (box.n_settings, box.n_queries, box.n_calls) == (2, 6, 1)


def test_layer_splits_a_coordinate_request_for_a_one_setting_driver_and_retries():
    calls = []

    def driver(x, params):
        calls.append(params.clone())
        if len(calls) == 2:
            raise OSError("frame dropped")
        return x * params

    box = FunctionBlackBox(driver, 2, 2, init_params=[1.0, 2.0])
    box.settings_per_call = 1
    layer = BlackBoxLayer(box, device_retries=1, seed=0)
    moved = layer.query_device_coordinates(torch.ones(1, 2), torch.tensor([1, 0]), 0.5)
    assert moved.tolist() == [[[1.0, 2.5]], [[1.5, 2.0]]]
    assert layer.n_device_retries == 1 and box.n_calls == 3


class SquaredMesh(MZIMesh):
    """A mesh with a non-linear read-out of its own: the structure no longer describes it."""

    def _transfer(self, x, phases):
        return super()._transfer(x, phases) ** 2


def test_a_subclass_that_changes_the_transfer_is_answered_by_its_settings():
    device = SquaredMesh(4, 4, seed=0)
    x = torch.randn(3, 4, dtype=torch.float64)
    params = device.initial_params().double()
    coordinates = torch.arange(device.n_params)
    expected = device(x, settings_of(params, coordinates, 0.2))
    torch.testing.assert_close(device.query_coordinates(x, params, coordinates, 0.2), expected,
                               rtol=0, atol=0)
    assert MZIMesh(4, 4)._answers_from_structure() and USVMesh(4, 4)._answers_from_structure()
    assert not device._answers_from_structure()
