"""How BlackBoxLayer calls a device: timeouts, cancellation, retries per call, noise on retry.

The references are independent of the layer: event logs and counters kept inside the drivers,
and the same training run on a device that never fails.
"""

import threading
import time

import numpy as np
import pytest
import torch

from hybridnet import BlackBoxLayer
from hybridnet.physical import (
    BlackBoxError,
    DeviceTimeoutError,
    FaultyBlackBox,
    FunctionBlackBox,
    MZIMesh,
)


def train(box, steps=6, **options):
    """Device parameters after ``steps`` SGD steps of a layer on a fixed regression problem
    (inputs that need a gradient, so the surrogate is queried too), and the layer."""
    layer = BlackBoxLayer(box, seed=0, **options)
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(16, box.in_features, generator=generator, requires_grad=True)
    target = torch.randn(16, box.out_features, generator=generator)
    optimizer = torch.optim.SGD(layer.parameters(), lr=0.1)
    for _ in range(steps):
        optimizer.zero_grad()
        (layer(x) - target).square().mean().backward()
        optimizer.step()
    return layer.params.detach().clone(), layer


def noisy_mesh():
    return MZIMesh(4, 4, phase_noise=0.01, detector_noise=0.02, seed=1)


# ----------------------------------------------------------------- timeouts and cancellation

class Bench:
    """A driver that sets the phases, then measures with whatever phases are set: two steps
    that another call must not come between. Logs (event, call, thread) and counts the calls
    running."""

    def __init__(self, slow_calls=(), slow_seconds=0.4):
        self.slow_calls, self.slow_seconds = set(slow_calls), slow_seconds
        self.log, self.running, self.calls = [], 0, 0
        self.phases = None
        self.lock = threading.Lock()

    def __call__(self, x, params):
        with self.lock:
            call, self.calls = self.calls, self.calls + 1
            self.running += 1
        try:
            if call in self.slow_calls:
                time.sleep(self.slow_seconds)  # a busy instrument, late to start
            self.phases = params.copy()
            self.log.append(("set", call, threading.get_ident()))
            time.sleep(0.002)  # settling
            self.log.append(("measure", call, threading.get_ident()))
            return x * self.phases
        finally:
            with self.lock:
                self.running -= 1


def test_a_late_call_that_cannot_be_cancelled_ends_before_the_next_one_starts():
    bench = Bench(slow_calls={0})
    box = FunctionBlackBox(bench, 2, 2, init_params=np.zeros(2), backend="numpy", name="bench")
    layer = BlackBoxLayer(box, device_timeout=0.15, seed=0)
    x = torch.ones(1, 2, dtype=torch.float64)
    first = torch.tensor([1.0, 2.0], dtype=torch.float64)
    y = layer.query_device(x, first)
    assert bench.running == 0  # checked first: the late call has ended by now
    torch.testing.assert_close(y, x * first, rtol=0, atol=0)
    assert layer.n_device_retries == 1  # its late answer was refused
    second = torch.tensor([3.0, 4.0], dtype=torch.float64)
    start = time.monotonic()
    while time.monotonic() - start < 2 * bench.slow_seconds:  # longer than the late call took
        torch.testing.assert_close(layer.query_device(x, second), x * second, rtol=0, atol=0)
        assert bench.running == 0
    # Every call set its phases and measured before the next call did anything, and ran in
    # the calling thread (a call that cannot be cancelled needs no other).
    events = [(event, call) for event, call, _ in bench.log]
    assert events == [(event, call) for call in range(bench.calls)
                      for event in ("set", "measure")]
    assert {thread for _, _, thread in bench.log} == {threading.get_ident()}
    assert box.n_calls == bench.calls


def test_a_call_that_can_be_cancelled_is_cancelled_and_waited_for():
    abort, running, cancels = threading.Event(), [], 0

    def instrument(x, params):
        running.append(True)
        try:
            if abort.wait(30.0):  # hangs until aborted
                abort.clear()
                raise InterruptedError("measurement aborted")
            return x * params
        finally:
            running.pop()

    def cancel():
        nonlocal cancels
        cancels += 1
        abort.set()

    box = FunctionBlackBox(instrument, 2, 2, init_params=[1.0, 1.0], cancel=cancel)
    assert box.cancellable
    layer = BlackBoxLayer(box, device_timeout=0.05, device_retries=1, seed=0)
    start = time.monotonic()
    with pytest.raises(BlackBoxError, match=r"instrument failed 2 time\(s\).*did not answer "
                                            r"within device_timeout=0.05 s") as info:
        layer.query_device(torch.ones(1, 2), layer.params.detach())
    assert time.monotonic() - start < 10  # cancelled, not waited out (30 s a call)
    assert isinstance(info.value.__cause__, DeviceTimeoutError)
    assert isinstance(info.value.__cause__.__cause__.__cause__, InterruptedError)
    assert cancels == 2 and running == []  # both calls cancelled, and both ended


def test_a_cancelled_delay_of_a_faulty_box_never_reaches_the_device():
    mesh = MZIMesh(2, 2, seed=0)
    bench = FaultyBlackBox(mesh, delay=30.0, delay_rate=1.0, seed=0)
    assert bench.cancellable and not mesh.cancellable
    layer = BlackBoxLayer(bench, device_timeout=0.05, device_retries=2, seed=0)
    start = time.monotonic()
    with pytest.raises(BlackBoxError, match="did not answer within device_timeout"):
        layer.query_device(torch.ones(1, 2), layer.params.detach())
    assert time.monotonic() - start < 10
    assert (bench.n_calls, bench.n_delays, mesh.n_calls) == (3, 3, 0)


def test_noisy_training_through_timeouts_is_reproducible():
    # Delayed requests are cancelled: no abandoned call draws the mesh's noise behind the
    # training's back, so two runs, and the run on the bare mesh, end bitwise the same. (A delay
    # just past the timeout: an abandoned call would have drawn its noise a few steps later.)
    healthy, _ = train(noisy_mesh(), steps=20)
    runs = []
    for _ in range(2):
        bench = FaultyBlackBox(noisy_mesh(), delay=0.06, delay_rate=0.2, seed=3)
        params, layer = train(bench, steps=20, device_timeout=0.05, device_retries=8)
        assert bench.n_delays > 0 and layer.n_device_retries > 0
        runs.append(params)
    assert torch.equal(runs[0], runs[1])
    assert torch.equal(runs[0], healthy)


# ----------------------------------------------------------------- noise of retried calls

def test_failed_and_nan_answers_do_not_shift_the_noise_of_later_queries():
    healthy, _ = train(noisy_mesh(), steps=10)
    bench = FaultyBlackBox(noisy_mesh(), fail_rate=0.2, nan_rate=0.1, seed=4)
    faulty, layer = train(bench, steps=10, device_retries=10)
    assert bench.n_failures > 0 and bench.n_nan_answers > 0
    assert layer.n_device_retries == bench.n_failures + bench.n_nan_answers
    assert torch.equal(faulty, healthy)


# ----------------------------------------------------------------- retries per call

class DroppingDriver:
    """A linear driver taking one setting at a time that drops a share of its calls; counts
    the calls and input vectors it was asked for, dropped ones included."""

    def __init__(self, drop_rate, seed=0):
        self.drop_rate, self.rng = drop_rate, np.random.default_rng(seed)
        self.calls = self.vectors = 0

    def __call__(self, x, params):
        self.calls += 1
        self.vectors += len(x)
        if self.rng.random() < self.drop_rate:
            raise OSError("frame dropped")
        return x @ params.reshape(4, 4).T


def driver_box(driver):
    return FunctionBlackBox(driver, 4, 4, init_params=np.eye(4).ravel(), backend="numpy",
                            linear=True, name="bench")


def test_a_driver_dropping_one_call_in_ten_trains_as_a_healthy_one():
    # zo_samples=20: one request of 20 settings per step. Retried as a whole it failed 88 % of
    # the time; retried setting by setting, the fit runs through.
    healthy, _ = train(driver_box(DroppingDriver(0.0)), steps=20, zo_samples=20)
    driver = DroppingDriver(0.1)
    box = driver_box(driver)
    dropped, layer = train(box, steps=20, zo_samples=20, device_retries=5)
    assert torch.equal(dropped, healthy)
    assert layer.n_device_retries > 0
    # Every call the driver saw, dropped ones included, and only those, is counted.
    assert (box.n_calls, box.n_queries) == (driver.calls, driver.vectors)


def test_a_setting_that_keeps_failing_is_named_by_its_index():
    seen = []

    def driver(x, params):
        seen.append(float(params[0]))
        if params[0] == 3.0:
            raise OSError("detector saturated")
        return x * params

    box = FunctionBlackBox(driver, 2, 2, init_params=[1.0, 1.0], name="bench")
    layer = BlackBoxLayer(box, device_retries=2, seed=0)
    settings = torch.tensor([[1.0, 1.0], [2.0, 2.0], [3.0, 3.0], [4.0, 4.0]])
    with pytest.raises(BlackBoxError, match=r"bench failed 3 time\(s\) in a row on setting 2 "
                                            r"of a request of 4 settings \(device_retries=2\)"
                                            r".*detector saturated"):
        layer.query_device(torch.ones(1, 2), settings)
    assert seen == [1.0, 2.0, 3.0, 3.0, 3.0]  # the last setting was never asked for
    assert box.n_calls == 5


def test_a_batched_driver_with_a_limit_is_called_in_groups_each_retried():
    calls = []

    def driver(x, params):  # takes at most two settings; its second call fails
        calls.append(len(params))
        if len(calls) == 2:
            raise OSError("frame dropped")
        return x * params[:, None, :]

    box = FunctionBlackBox(driver, 2, 2, init_params=[1.0, 1.0], batched=True, name="bench")
    box.settings_per_call = 2
    layer = BlackBoxLayer(box, seed=0)
    settings = torch.arange(10.0).reshape(5, 2)
    y = layer.query_device(torch.ones(3, 2), settings)
    torch.testing.assert_close(y, settings[:, None, :].expand(5, 3, 2))
    assert calls == [2, 2, 2, 1] and layer.n_device_retries == 1
    assert (box.n_calls, box.n_queries) == (4, 3 * 7)
    always = FunctionBlackBox(lambda x, params: x * params[:, None, :] * float("nan"), 2, 2,
                              init_params=[1.0, 1.0], batched=True, name="blind")
    always.settings_per_call = 2
    with pytest.raises(BlackBoxError, match="on settings 0-1 of a request of 5 settings"):
        BlackBoxLayer(always, device_retries=0, seed=0).query_device(torch.ones(3, 2), settings)
