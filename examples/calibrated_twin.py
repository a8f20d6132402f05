"""Fabrication mismatch: nominal twin, calibrated twin or in situ
==============================================================

Train for a chip whose fabrication differs from its design: nominal twin, calibrated twin or
in situ.

The "chip" is a simulated 64 x 64 MZI mesh with 0.3 rad phase offsets, 0.2 dB +- 0.05 dB losses
per MZI and 1 % detector noise, hidden from the trainer. Three ways to train a digits
classifier with it:

1. on the nominal twin (the design's simulator), deployed on the chip: the offsets break it;
2. ``training="calibrated_twin"``: 512 queries measure the chip, ``hybridnet.calibrate`` fits
   the twin's offsets and losses to them, training runs on the calibrated twin;
3. in situ on the chip (every training query on the device).

Then the same calibration by hand for a plain PyTorch loop (``calibrate`` and
``BlackBoxLayer.using``). Prints accuracy and device queries per way; about a minute on one
core, and plots accuracy against chip queries.

Run ``python examples/calibrated_twin.py``.
"""

import matplotlib.pyplot as plt
import torch
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import StandardScaler
from torch import nn

from hybridnet import BlackBoxLayer, HybridNetClassifier, calibrate
from hybridnet.physical import MZIMesh

LOSSES = {"insertion_loss": 0.2, "insertion_loss_std": 0.05}
CHIP = {"fabrication_error": 0.3, "detector_noise": 0.01, **LOSSES}


def with_sklearn(X_train, X_test, y_train, y_test):
    common = dict(max_iter=30, random_state=0)
    nominal = HybridNetClassifier(training="backprop",
                                  device_options={"insertion_loss": 0.2}, **common)
    nominal.fit(X_train, y_train)
    layer = next(m for m in nominal.module_.modules() if isinstance(m, BlackBoxLayer))
    layer.black_box = MZIMesh(64, 64, seed=layer.black_box.seed, **CHIP)  # deploy on the chip
    results = {"nominal twin": (nominal.score(X_test, y_test), 0)}
    print(f"nominal twin, deployed on the chip: {results['nominal twin'][0]:.4f} "
          f"(0 chip queries to train)")
    for training in ("calibrated_twin", "surrogate"):
        model = HybridNetClassifier(training=training, device_options=CHIP, **common)
        model.fit(X_train, y_train)
        results[training] = (model.score(X_test, y_test), model.n_device_queries_)
        print(f"training={training!r}: {results[training][0]:.4f} "
              f"({model.n_device_queries_:,} chip queries)")
    return results


def plot(results):
    """Accuracy on the chip and chip queries spent, per way of training."""
    figure, (accuracy_axis, queries_axis) = plt.subplots(1, 2, figsize=(9, 3.2))
    names = list(results)
    accuracy_axis.bar(names, [accuracy for accuracy, _ in results.values()], color="C0")
    accuracy_axis.set(ylabel="test accuracy on the chip", ylim=(0, 1))
    queries_axis.bar(names, [max(queries, 1) for _, queries in results.values()], color="C1")
    queries_axis.set(ylabel="chip queries to train", yscale="log")
    figure.suptitle("64 x 64 MZI chip, 0.3 rad fabrication error, 0.2 dB loss per MZI")
    figure.tight_layout()


def with_pytorch(X_train, X_test, y_train, y_test):
    torch.manual_seed(0)
    chip = MZIMesh(64, 64, seed=1, **CHIP)
    layer = BlackBoxLayer(chip, seed=0)
    model = nn.Sequential(nn.Linear(64, 64), nn.ReLU(), layer, nn.ReLU(), nn.Linear(64, 10))
    twin = calibrate(chip, chip.nominal_twin(), params=layer.params, seed=0)
    print(f"plain PyTorch: calibrated with {twin.calibration_queries} queries, twin error "
          f"{twin.calibration_error_before:.2f} -> {twin.calibration_error:.3f}")
    X, y = torch.as_tensor(X_train), torch.as_tensor(y_train)
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    with layer.using(twin):  # autograd through the calibrated twin: no chip query
        for _ in range(30):
            for batch in torch.randperm(len(X)).split(64):
                optimizer.zero_grad()
                nn.functional.cross_entropy(model(X[batch]), y[batch]).backward()
                optimizer.step()
    with torch.no_grad():  # on the chip again
        accuracy = (model(torch.as_tensor(X_test)).argmax(1).numpy() == y_test).mean()
    print(f"plain PyTorch on the chip: {accuracy:.4f} ({chip.n_queries:,} chip queries, "
          "the calibration and the test predictions)")


def main():
    X, y = load_digits(return_X_y=True)
    X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.2, random_state=0)
    scaler = StandardScaler().fit(X_train)
    X_train, X_test = (scaler.transform(X_train).astype("float32"),
                       scaler.transform(X_test).astype("float32"))
    results = with_sklearn(X_train, X_test, y_train, y_test)
    with_pytorch(X_train, X_test, y_train, y_test)
    plot(results)
    plt.show()


if __name__ == "__main__":
    main()
