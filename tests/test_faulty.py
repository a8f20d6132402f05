"""Tests of FaultyBlackBox: fault frequencies, drift, exactness without faults, reproducibility."""

import copy
import math
import pickle
import threading
import time

import pytest
import torch

from hybridnet.physical import (
    BlackBoxError,
    FaultyBlackBox,
    FunctionBlackBox,
    MRRBank,
    MZIMesh,
    TransientDeviceError,
)

N_REQUESTS = 2000


def identity_device(n, batched=False):
    """A device whose answer to x = ones is the parameter vector (or vectors) it received."""
    if batched:
        return FunctionBlackBox(lambda x, params: x * params[:, None, :], n, n,
                                init_params=torch.zeros(n), batched=True, name="identity")
    return FunctionBlackBox(lambda x, params: x * params, n, n, init_params=torch.zeros(n),
                            name="identity")


def run(box, n_requests, x, params):
    """Answers (None for a refused request) and error messages of ``n_requests`` requests."""
    answers, errors = [], []
    for _ in range(n_requests):
        try:
            answers.append(box(x, params))
        except BlackBoxError as error:
            answers.append(None)
            errors.append(str(error))
    return answers, errors


def assert_binomial(count, n, p):
    """``count`` successes out of ``n`` lies within 5 standard deviations of ``n p``."""
    assert abs(count - n * p) <= 5 * math.sqrt(n * p * (1 - p)) + 1


def assert_same_answers(first, second):
    assert len(first) == len(second)
    for a, b in zip(first, second, strict=True):
        assert (a is None) == (b is None)
        if a is not None:
            assert torch.equal(a, b)


@pytest.fixture
def mesh_inputs():
    mesh = MZIMesh(4, 4, seed=0)
    return mesh, torch.ones(2, 4), mesh.initial_params(torch.Generator().manual_seed(0))


def test_failure_frequency_and_message(mesh_inputs):
    mesh, x, params = mesh_inputs
    box = FaultyBlackBox(mesh, fail_rate=0.2, seed=1)
    answers, errors = run(box, N_REQUESTS, x, params)
    n_failed = sum(a is None for a in answers)
    assert_binomial(n_failed, N_REQUESTS, 0.2)
    assert box.n_failures == n_failed == len(errors)
    assert "MZIMesh" in errors[0] and "TransientDeviceError" in errors[0]
    # The wrapper counts every request, the mesh only those that reached it.
    assert box.n_calls == N_REQUESTS
    assert mesh.n_calls == N_REQUESTS - n_failed
    assert box.n_nan_answers == box.n_delays == 0


def test_failure_keeps_the_transient_error_as_cause(mesh_inputs):
    mesh, x, params = mesh_inputs
    with pytest.raises(BlackBoxError, match=r"Faulty\(MZIMesh\)") as info:
        FaultyBlackBox(mesh, fail_rate=1.0, seed=0)(x, params)
    assert isinstance(info.value.__cause__, TransientDeviceError)


def test_nan_frequency_is_refused_by_the_base_class(mesh_inputs):
    mesh, x, params = mesh_inputs
    box = FaultyBlackBox(mesh, nan_rate=0.3, seed=2)
    answers, errors = run(box, N_REQUESTS, x, params)
    assert_binomial(len(errors), N_REQUESTS, 0.3)
    assert box.n_nan_answers == len(errors)
    assert all("NaN" in message for message in errors)
    assert mesh.n_calls == N_REQUESTS  # a corrupted answer still queried the device
    assert box.n_failures == 0


def test_nan_answers_hold_some_nan(mesh_inputs):
    mesh, x, params = mesh_inputs
    box = FaultyBlackBox(mesh, nan_rate=1.0, seed=3)
    counts = set()
    for _ in range(50):
        with pytest.raises(BlackBoxError, match=r"returned (\d+) NaN") as info:
            box(x, params)
        counts.add(int(str(info.value).split("returned ")[1].split(" NaN")[0]))
    assert min(counts) >= 1 and max(counts) <= x.numel() and len(counts) > 1


def test_delay_frequency():
    box = FaultyBlackBox(MRRBank(2, 2, seed=0), delay_rate=0.4, seed=4)
    run(box, N_REQUESTS, torch.ones(1, 2), box.initial_params())
    assert_binomial(box.n_delays, N_REQUESTS, 0.4)


def test_delay_sleeps():
    box = FaultyBlackBox(MRRBank(2, 2, seed=0), delay=0.01, delay_rate=1.0, seed=0)
    start = time.perf_counter()
    for _ in range(5):
        box(torch.ones(1, 2), box.initial_params())
    assert time.perf_counter() - start >= 0.05
    assert box.n_delays == 5


@pytest.mark.parametrize("make_device", [
    lambda: MZIMesh(6, 4, phase_noise=0.01, detector_noise=0.01, fabrication_error=0.05, seed=5),
    lambda: MRRBank(5, 3, phase_noise=0.01, crosstalk=0.05, seed=5),
])
def test_no_faults_reproduce_the_wrapped_device_exactly(make_device):
    device, reference = make_device(), make_device()
    box = FaultyBlackBox(device, seed=0)
    generator = torch.Generator().manual_seed(6)
    for settings in (None, 1, 3):
        shape = () if settings is None else (settings,)
        params = torch.randn(*shape, box.n_params, generator=generator)
        x = torch.randn(*shape, 4, box.in_features, generator=generator)
        assert torch.equal(box(x, params), reference(x, params))
    assert (box.in_features, box.out_features, box.n_params) == (
        reference.in_features, reference.out_features, reference.n_params)
    assert (box.linear, box.differentiable) == (reference.linear, reference.differentiable)
    assert box.name == f"Faulty({reference.name})"
    assert torch.equal(box.initial_params(torch.Generator().manual_seed(1)),
                       reference.initial_params(torch.Generator().manual_seed(1)))


def test_calls_follow_the_wrapped_device():
    one_at_a_time = FunctionBlackBox(lambda x, params: x * params, 2, 2, torch.zeros(2))
    box = FaultyBlackBox(one_at_a_time, seed=0)
    box(torch.ones(1, 2), torch.zeros(3, 2))
    assert box.n_calls == one_at_a_time.n_calls == 3
    box.reset_counters()
    assert box.n_calls == box.n_queries == one_at_a_time.n_calls == 0


def test_noise_state_is_the_wrapped_devices_and_the_faults_go_on(mesh_inputs):
    _, x, params = mesh_inputs
    mesh = MZIMesh(4, 4, detector_noise=0.1, seed=0)
    box = FaultyBlackBox(mesh, fail_rate=0.5, seed=1)
    state = box.noise_state()
    assert torch.equal(state, mesh.noise_state())
    first = run(box, 30, x, params)[0]
    box.set_noise_state(state)
    second = run(box, 30, x, params)[0]
    # The mesh's noise starts over: its answers come again in the same order ...
    answered = [[y for y in answers if y is not None] for answers in (first, second)]
    n = min(map(len, answered))
    assert n > 5
    assert all(torch.equal(a, b) for a, b in zip(answered[0][:n], answered[1][:n], strict=True))
    # ... while the faults are drawn afresh.
    assert [y is None for y in first] != [y is None for y in second]


def test_a_cancelled_delay_raises_at_once_without_querying_the_device():
    mesh = MZIMesh(2, 2, seed=0)
    box = FaultyBlackBox(mesh, delay=30.0, delay_rate=1.0, seed=0)
    assert box.cancellable and not FaultyBlackBox(mesh).cancellable
    assert not box.cancel()  # nothing running: passed on to the mesh, which cannot cancel
    errors = []

    def request():
        try:
            box(torch.ones(1, 2), box.initial_params())
        except BlackBoxError as error:
            errors.append(error)

    worker = threading.Thread(target=request)
    start = time.monotonic()
    worker.start()
    while not box.cancel():  # until the request is in its delay
        time.sleep(0.001)
    worker.join()
    assert time.monotonic() - start < 10  # not the 30 s delay
    assert isinstance(errors[0].__cause__, InterruptedError)
    assert (box.n_calls, box.n_delays, mesh.n_calls) == (1, 1, 0)


def test_drift_is_a_random_walk():
    n, drift = 400, 0.01
    box = FaultyBlackBox(identity_device(n), drift=drift, seed=7)
    x, zero = torch.ones(1, n, dtype=torch.float64), torch.zeros(n, dtype=torch.float64)
    offsets = torch.stack([box(x, zero)[0] for _ in range(100)])  # (requests, n)
    assert not torch.equal(offsets[0], offsets[1])
    assert torch.equal(offsets[-1], box.drift_offsets)
    for k in (4, 25, 100):
        # n independent walks: the offset after k steps has variance k drift^2.
        ratio = offsets[k - 1].var() / (k * drift**2)
        assert 0.7 < ratio < 1.3


def test_drift_is_shared_by_the_settings_of_a_request():
    box = FaultyBlackBox(identity_device(3, batched=True), drift=0.1, seed=8)
    y = box(torch.ones(1, 3), torch.zeros(4, 3))
    assert torch.equal(y, y[:1].expand_as(y))
    assert box.n_calls == 1


def test_a_device_taking_one_setting_at_a_time_drifts_and_fails_per_call():
    # Four settings are four calls of such a device: each steps the drift and draws its faults.
    box = FaultyBlackBox(identity_device(3), drift=0.1, seed=8)
    assert box.settings_per_call == 1
    y = box(torch.ones(1, 3), torch.zeros(4, 3))[:, 0]
    assert box.n_calls == 4 and len(torch.unique(y, dim=0)) == 4
    torch.testing.assert_close(y[-1], box.drift_offsets.float())
    flaky = FaultyBlackBox(identity_device(3), fail_rate=0.5, seed=0)
    answered = 0
    for _ in range(200):
        try:
            flaky(torch.ones(1, 3), torch.zeros(4, 3))
            answered += 1
        except BlackBoxError:
            pass
    # all four calls must pass: 1/16 of the requests, not 1/2
    assert_binomial(answered, 200, 0.5**4)
    assert flaky.n_calls == flaky.device.n_calls + flaky.n_failures


def test_seeds_reproduce_and_differ(mesh_inputs):
    _, x, params = mesh_inputs

    def answers(seed):
        box = FaultyBlackBox(MZIMesh(4, 4, seed=0), fail_rate=0.3, nan_rate=0.2, drift=0.01,
                             seed=seed)
        return run(box, 30, x, params)[0]

    assert_same_answers(answers(9), answers(9))
    first, other = answers(9), answers(10)
    assert [a is None for a in first] != [a is None for a in other]


@pytest.mark.parametrize("duplicate", [copy.deepcopy, lambda box: pickle.loads(pickle.dumps(box))])
def test_copies_continue_the_same_stream(mesh_inputs, duplicate):
    _, x, params = mesh_inputs
    box = FaultyBlackBox(MZIMesh(4, 4, phase_noise=0.01, seed=0), fail_rate=0.3, nan_rate=0.2,
                         drift=0.01, seed=11)
    run(box, 10, x, params)
    twin = duplicate(box)
    assert (twin.n_failures, twin.n_nan_answers) == (box.n_failures, box.n_nan_answers)
    assert_same_answers(run(box, 30, x, params)[0], run(twin, 30, x, params)[0])
    assert torch.equal(box.drift_offsets, twin.drift_offsets)


def test_reset_counters(mesh_inputs):
    mesh, x, params = mesh_inputs
    box = FaultyBlackBox(mesh, fail_rate=0.5, nan_rate=0.5, delay_rate=0.5, seed=12)
    run(box, 20, x, params)
    box.reset_counters()
    assert (box.n_failures, box.n_nan_answers, box.n_delays, box.n_queries, box.n_calls,
            mesh.n_queries, mesh.n_calls) == (0,) * 7


@pytest.mark.parametrize(("kwargs", "error", "match"), [
    ({"fail_rate": 1.5}, ValueError, "fail_rate"),
    ({"nan_rate": -0.1}, ValueError, "nan_rate"),
    ({"delay_rate": math.nan}, ValueError, "delay_rate"),
    ({"fail_rate": True}, ValueError, "fail_rate"),
    ({"drift": -1.0}, ValueError, "drift"),
    ({"drift": math.inf}, ValueError, "drift"),
    ({"delay": math.nan}, ValueError, "delay"),
    ({"delay": "1"}, ValueError, "delay"),
])
def test_invalid_arguments(kwargs, error, match):
    with pytest.raises(error, match=match):
        FaultyBlackBox(MRRBank(2, 2, seed=0), **kwargs)


def test_device_must_be_a_black_box():
    with pytest.raises(TypeError, match="device must be a BlackBox"):
        FaultyBlackBox(lambda x, params: x)
