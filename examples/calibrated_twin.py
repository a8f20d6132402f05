"""Fabrication mismatch: nominal twin, calibrated twin, physics-aware or in situ
=============================================================================

Train for a chip whose fabrication differs from its design, four ways, and count the chip
time each spends.

The "chip" is a simulated 64 x 64 MZI mesh with 0.3 rad phase offsets, 0.2 dB +- 0.05 dB losses
per MZI and 1 % detector noise, hidden from the trainer. Four ways to train a digits
classifier with it:

1. on the nominal twin (the design's simulator), deployed on the chip
   (``training="calibrated_twin", twin="nominal"``): the offsets break it;
2. ``training="calibrated_twin"``: 512 queries measure the chip, ``hybridnet.calibrate`` fits
   the twin's offsets and losses to them, training runs on the calibrated twin;
3. ``training="physics_aware"``: every forward pass on the chip, the gradients through the
   calibrated twin;
4. in situ on the chip (every gradient from chip queries).

Then the same calibration by hand for a plain PyTorch loop (``calibrate`` and
``BlackBoxLayer.using``). Prints accuracy, chip settings and modelled chip seconds per way
(the simulated chip's nominal cost model: 100 us to settle a setting, 1 ns a vector); about
two minutes on one core, and plots accuracy against chip seconds.

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


WAYS = {"nominal twin": {"training": "calibrated_twin", "twin": "nominal"},
        "calibrated twin": {"training": "calibrated_twin"},
        "physics-aware": {"training": "physics_aware"},
        "in situ": {"training": "surrogate"}}


def with_sklearn(X_train, X_test, y_train, y_test):
    results = {}
    for name, options in WAYS.items():
        model = HybridNetClassifier(device_options=CHIP, max_iter=30, random_state=0, **options)
        model.fit(X_train, y_train)
        results[name] = (model.score(X_test, y_test), model.device_seconds_)
        print(f"{name}: {results[name][0]:.4f} ({model.n_device_settings_:,} chip settings, "
              f"{model.n_device_queries_:,} vectors, {model.device_seconds_:.3g} chip s)")
    return results


def plot(results):
    """Accuracy on the chip against the modelled chip seconds of training, per way."""
    figure, axis = plt.subplots(figsize=(5.5, 3.4))
    for name, (accuracy, seconds) in results.items():
        axis.scatter(max(seconds, 1e-4), accuracy, label=name, s=40)  # 0 s at the left edge
    axis.set(xscale="log", xlabel="modelled chip seconds to train",
             ylabel="test accuracy on the chip", ylim=(0, 1))
    axis.legend(fontsize=8, loc="lower right")
    axis.set_title("64 x 64 MZI chip, 0.3 rad fabrication error", fontsize=10)
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
