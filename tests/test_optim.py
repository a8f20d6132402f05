"""Zeroth-order optimizers and back-propagation-free training."""

import pickle

import numpy as np
import pytest
import torch
from sklearn.datasets import load_digits, load_iris
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import StandardScaler
from torch import nn

from hybridnet import BlackBoxLayer, HybridNetClassifier, TTLinear
from hybridnet.optim import BatchedLoss, PlateauSwitch, ZerothOrderOptimizer
from hybridnet.physical import MRRBank


def regression_problem(seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(128, 5, generator=g)
    y = x @ torch.randn(5, 2, generator=g) + 0.5
    return x, y


def mse(output, target):
    return (output - target).square().mean()


@pytest.mark.parametrize("estimator", ["rge", "central_rge", "sign_rge", "cge"])
@pytest.mark.parametrize("update", ["sgd", "adam"])
def test_every_estimator_fits_least_squares_without_gradients(estimator, update):
    x, y = regression_problem()
    torch.manual_seed(0)
    model = nn.Linear(5, 2)
    lr = {"sign_rge": 1e-2, "cge": 0.05}.get(estimator, 0.02)
    optimizer = ZerothOrderOptimizer(model.parameters(), lr=lr, estimator=estimator,
                                     n_samples=10, update=update, seed=0)
    closure = BatchedLoss(model, mse, x, y)
    first = closure().item()
    for _ in range(300):
        optimizer.step(closure)
    assert closure().item() < 0.2 * first
    assert all(p.grad is None for p in model.parameters())


def test_batched_and_sequential_closures_give_the_same_steps():
    x, y = regression_problem()
    results = []
    for batched in (True, False):
        torch.manual_seed(0)
        model = nn.Sequential(nn.Linear(5, 4), nn.Tanh(), TTLinear(4, 2, 2))
        optimizer = ZerothOrderOptimizer(model.parameters(), lr=0.01, n_samples=6, seed=3)
        closure = BatchedLoss(model, mse, x, y)
        plain = closure if batched else (lambda closure=closure: closure())
        losses = [optimizer.step(plain).item() for _ in range(5)]
        results.append((losses, [p.detach().clone() for p in model.parameters()]))
    np.testing.assert_allclose(results[0][0], results[1][0], rtol=1e-5)
    for a, b in zip(results[0][1], results[1][1], strict=True):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


def test_a_device_in_the_model_gets_one_request_per_step():
    x, y = regression_problem()
    layer = BlackBoxLayer(MRRBank(5, 3, seed=0), seed=0)
    model = nn.Sequential(layer, nn.Linear(3, 2))
    optimizer = ZerothOrderOptimizer(model.parameters(), lr=0.01, n_samples=7, seed=0)
    optimizer.step(BatchedLoss(model, mse, x, y))
    assert layer.black_box.n_calls == 1
    assert layer.black_box.n_queries == 2 * 7 * len(x)  # every perturbed setting, whole batch
    assert optimizer.n_evaluations == 14


def test_evaluation_counts_and_chunking():
    x, y = regression_problem()
    model = nn.Linear(5, 2)
    optimizer = ZerothOrderOptimizer(model.parameters(), estimator="cge", chunk_size=5, seed=0)
    optimizer.step(BatchedLoss(model, mse, x, y))
    assert optimizer.n_evaluations == 2 * 12


def test_plateau_switch_happens_on_a_plateau_only():
    model = nn.Linear(2, 1)
    optimizer = ZerothOrderOptimizer(model.parameters(), lr=5e-3, estimator="sign_rge")
    switch = PlateauSwitch(optimizer, patience=2, lr_factor=0.2, coordinate_skip=0.5)
    for loss in (1.0, 0.8, 0.6, 0.5, 0.45):
        switch.step(loss)
    assert switch.switched_at is None
    assert optimizer.param_groups[0]["estimator"] == "sign_rge"
    for loss in (0.4499, 0.45):  # no relative improvement beyond 1e-3 twice in a row
        switch.step(loss)
    assert switch.switched_at == 7
    group = optimizer.param_groups[0]
    assert (group["estimator"], group["coordinate_skip"]) == ("cge", 0.5)
    assert group["lr"] == pytest.approx(1e-3)


def test_poisoned_estimates_are_never_applied():
    model = nn.Linear(2, 1)
    before = [p.detach().clone() for p in model.parameters()]
    optimizer = ZerothOrderOptimizer(model.parameters(), seed=0)
    loss = optimizer.step(lambda: torch.tensor(float("nan")))
    assert torch.isnan(loss)
    for old, new in zip(before, model.parameters(), strict=True):
        torch.testing.assert_close(new.detach(), old)


@pytest.mark.parametrize("kwargs, message", [
    ({"lr": -1}, "lr must be a positive number"),
    ({"estimator": "spsa"}, "estimator must be one of"),
    ({"update": "rmsprop"}, "update must be one of"),
    ({"n_samples": 0}, "n_samples must be an int"),
    ({"coordinate_skip": 1.0}, "coordinate_skip must lie in"),
])
def test_invalid_optimizer_options(kwargs, message):
    with pytest.raises(ValueError, match=message):
        ZerothOrderOptimizer(nn.Linear(2, 1).parameters(), **kwargs)


@pytest.fixture(scope="module")
def digits():
    X, y = load_digits(return_X_y=True)
    return train_test_split(StandardScaler().fit_transform(X), y, test_size=0.25,
                            stratify=y, random_state=0)


def test_bp_free_tt_network_learns_digits_without_autograd(digits):
    X_train, X_test, y_train, y_test = digits
    clf = HybridNetClassifier((16, 16), physical_layer=None, training="bp_free", tt_rank=4,
                              zo_estimator="central_rge", zo_samples=20, learning_rate=1e-2,
                              max_iter=10, random_state=0).fit(X_train, y_train)
    assert clf.score(X_test, y_test) > 0.6  # chance is 0.1
    assert all(p.grad is None for p in clf.module_.parameters())
    assert any(isinstance(m, TTLinear) for m in clf.module_.modules())
    steps = clf.n_iter_ * -(-len(X_train) // clf.batch_size)
    assert clf.n_loss_evaluations_ == steps * 2 * 20


def test_bp_free_hybrid_network_with_a_device(digits):
    X_train, X_test, y_train, y_test = digits
    clf = HybridNetClassifier((16, 16), physical_layer="mrr", training="bp_free",
                              zo_estimator="hybrid", zo_smoothing=0.1, learning_rate=5e-3,
                              max_iter=16, n_iter_no_change=4, random_state=0)
    clf.fit(X_train, y_train)
    # The paper's x0.8-per-epoch signRGE decay stalls the loss (2.9 after 8 epochs); the
    # plateau switches to CGE, which then trains (measured: switch after epoch 8, loss 2.90 ->
    # 1.69, accuracy 0.54; chance is 0.1).
    assert clf.switched_at_ is not None and clf.switched_at_ < clf.n_iter_
    losses = clf.loss_curve_
    assert losses[-1] < 0.7 * losses[clf.switched_at_ - 1]
    assert clf.score(X_test, y_test) > 0.45
    assert clf.n_device_queries_ > 0
    assert all(p.grad is None for p in clf.module_.parameters())


def test_hybrid_estimator_only_with_bp_free(digits):
    X_train, _, y_train, _ = digits
    with pytest.raises(ValueError, match="zo_estimator=.hybrid. .* needs training=.bp_free."):
        HybridNetClassifier(zo_estimator="hybrid").fit(X_train, y_train)


def test_bp_free_hybrid_estimator_pickles_and_keeps_training(digits):
    X_train, _, y_train, _ = digits
    clf = HybridNetClassifier((8, 8), physical_layer="mrr", training="bp_free",
                              zo_estimator="hybrid", max_iter=2, random_state=0)
    clf.fit(X_train[:200], y_train[:200])
    clone = pickle.loads(pickle.dumps(clf))
    np.testing.assert_array_equal(clone.predict_proba(X_train), clf.predict_proba(X_train))
    assert clone._switch.optimizer is clone._optimizer
    clone.partial_fit(X_train[:200], y_train[:200])
    assert clone.n_iter_ == 3


def test_plateau_switch_fires_on_a_flat_negative_score():
    optimizer = ZerothOrderOptimizer([torch.zeros(2)], lr=1.0, estimator="sign_rge")
    switch = PlateauSwitch(optimizer, patience=2)
    for value in [-0.9] * 10:
        switch.step(value)
    assert switch.switched_at == 3  # the first value improves on inf, then two stale epochs
    scores = PlateauSwitch(ZerothOrderOptimizer([torch.zeros(2)], lr=1.0), patience=2,
                           mode="max")
    for value in [-3.0, -2.0, -1.0, -1.0, -1.0]:
        scores.step(value)
    assert scores.switched_at == 5


def test_plateau_switch_switches_after_its_longest_phase_while_still_improving():
    optimizer = ZerothOrderOptimizer([torch.zeros(2)], lr=1.0, estimator="sign_rge")
    switch = PlateauSwitch(optimizer, patience=2, decay=0.8, switch_after=3)
    for loss in [5.0, 4.0, 3.0]:  # improving every epoch: no plateau
        assert switch.switched_at is None
        switch.step(loss)
    assert switch.switched_at == 3 and optimizer.param_groups[0]["estimator"] == "cge"
    patient = PlateauSwitch(ZerothOrderOptimizer([torch.zeros(2)], lr=1.0), patience=2)
    for loss in [5.0, 4.0, 3.0, 2.0, 1.0]:
        patient.step(loss)
    assert patient.switched_at is None  # without switch_after only a plateau switches


def test_plateau_switch_follows_the_papers_learning_rates():
    optimizer = ZerothOrderOptimizer([torch.zeros(2)], lr=5e-3, estimator="sign_rge")
    switch = PlateauSwitch(optimizer, patience=1, lr_factor=0.2, decay=0.8, drop_after=2,
                           drop_factor=0.1, coordinate_skip=0.5, update="sgd", momentum=0.9)
    rates = []
    for loss in [3.0, 2.0, 2.0, 2.0, 2.0, 2.0]:
        switch.step(loss)
        rates.append(optimizer.param_groups[0]["lr"])
    expected = [5e-3 * 0.8, 5e-3 * 0.8**2, 1e-3, 1e-3, 1e-4, 1e-4]
    np.testing.assert_allclose(rates, expected)
    group = optimizer.param_groups[0]
    assert (group["estimator"], group["coordinate_skip"], group["momentum"]) == ("cge", 0.5, 0.9)


def test_cge_heavy_ball_update_matches_the_formula():
    weight = torch.zeros(3, dtype=torch.float64)
    target = torch.tensor([1.0, -2.0, 0.5], dtype=torch.float64)
    optimizer = ZerothOrderOptimizer([weight], lr=0.1, estimator="cge", smoothing=1e-4,
                                     update="sgd", momentum=0.9)
    reference, buffer = torch.zeros(3, dtype=torch.float64), torch.zeros(3, dtype=torch.float64)
    for _ in range(5):
        optimizer.step(lambda: (weight - target).square().sum())
        buffer = 0.9 * buffer + 2 * (reference - target)  # m <- beta m + g, exact gradient
        reference = reference - 0.1 * buffer
        torch.testing.assert_close(weight, reference, rtol=1e-6, atol=1e-8)


def test_different_estimator_settings_per_group_are_refused():
    optimizer = ZerothOrderOptimizer([{"params": [torch.zeros(2)]},
                                      {"params": [torch.zeros(3)], "n_samples": 50}],
                                     lr=0.1)
    with pytest.raises(ValueError, match=r"\['n_samples'\] must be the same in every group"):
        optimizer.step(lambda: torch.tensor(0.0))
    fine = ZerothOrderOptimizer([{"params": [torch.zeros(2)]},
                                 {"params": [torch.zeros(3)], "lr": 1.0, "momentum": 0.5}],
                                lr=0.1, update="sgd", seed=0)
    assert torch.isfinite(fine.step(lambda: torch.tensor(1.0)))


def test_hybrid_estimator_switches_on_a_flat_validation_score():
    X, y = load_iris(return_X_y=True)
    clf = HybridNetClassifier((8, 8), physical_layer=None, training="bp_free",
                              zo_estimator="hybrid", early_stopping=True, n_iter_no_change=8,
                              max_iter=60, random_state=0).fit(X, y)
    assert clf.switched_at_ is not None and clf.switched_at_ < 10  # a plateau, not the bound
    group = clf._optimizer.param_groups[0]
    assert (group["estimator"], group["update"]) == ("cge", "adam")  # "auto"
    assert clf._switch.drop_after is None
    seed_schedule = HybridNetClassifier((8, 8), physical_layer=None, training="bp_free",
                                        zo_estimator="hybrid", zo_update="sgd",
                                        early_stopping=True, n_iter_no_change=8, max_iter=60,
                                        random_state=0).fit(X, y)
    group = seed_schedule._optimizer.param_groups[0]
    assert (group["estimator"], group["update"], group["momentum"]) == ("cge", "sgd", 0.9)
    assert seed_schedule._switch.drop_after == 10  # the seed's x0.1 drop, with its SGD
