"""Your own device: FunctionBlackBox
==================================

A lab's device is a driver call: set the tuning parameters, send a batch of inputs, read the
detectors. :class:`~hybridnet.physical.FunctionBlackBox` wraps such a call so that
:class:`~hybridnet.HybridNetClassifier` trains a network around it in situ, from queries
alone.

The "device" here is simulated in numpy as its driver would see it: a 16 x 16 weight bank
whose weights are the cosines of 256 heater phases, read by detectors with 1 % noise. The
library never looks inside; it sees only ``driver(x, phases) -> y``.

The example also shows why the parameters must start at random: at all-zero phases every
weight is cos(0) = 1, the matrix has rank one and the gradient of each weight, -sin(0), is
zero, so in-situ training has nothing to follow.
"""

import matplotlib.pyplot as plt
import numpy as np
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from hybridnet import HybridNetClassifier
from hybridnet.physical import FunctionBlackBox

WIDTH = 16
detector = np.random.default_rng(1)


def driver(x, phases):
    """What the bench does: x (batch, 16), phases (256,) -> detector readings (batch, 16)."""
    weights = np.cos(phases).reshape(WIDTH, WIDTH)
    clean = x @ weights.T
    return clean + 0.01 * np.abs(clean).mean() * detector.standard_normal(clean.shape)


# %%
# Wrap the driver
# ---------------
# ``backend="numpy"`` hands the driver float64 arrays. ``linear`` is left to detection (a few
# queries before training). ``output_noise`` declares the detector noise, which the default
# ``zo_smoothing="auto"`` turns into a larger perturbation step.
def make_device(init_phases):
    device = FunctionBlackBox(driver, WIDTH, WIDTH, init_params=init_phases, backend="numpy",
                              name="cosine bank")
    device.output_noise = 0.01
    return device


rng = np.random.default_rng(0)
starts = {"random phases": rng.uniform(-np.pi, np.pi, WIDTH * WIDTH),
          "all-zero phases": np.zeros(WIDTH * WIDTH)}

# %%
# Train around it
# ---------------
# digits (80/20 split), 64 -> 16 -> [device 16 x 16] -> 16 -> 10, 20 epochs from each start.
X, y = load_digits(return_X_y=True)
X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.2, stratify=y,
                                                    random_state=0)
fitted = {}
for name, phases in starts.items():
    model = make_pipeline(StandardScaler(), HybridNetClassifier(
        hidden_layer_sizes=(WIDTH, WIDTH), physical_layer=make_device(phases), max_iter=20,
        tol=0.0, n_iter_no_change=21, random_state=0))
    model.fit(X_train, y_train)
    fitted[name] = model[-1]
    print(f"{name:<16} test accuracy {model.score(X_test, y_test):.4f}, "
          f"{model[-1].n_device_queries_:,} device queries")

# %%
# Learning curves
# ---------------
# The zero start's loss barely moves: the device's phases get no gradient signal, and the
# digital layers cannot make up for a rank-one map in the middle of the network.
figure, axis = plt.subplots(figsize=(6, 3.5))
for name, estimator in fitted.items():
    axis.plot(estimator.history_[:, "epoch"], estimator.history_[:, "train_loss"], label=name)
axis.set(xlabel="epoch", ylabel="training loss", title="a 16 x 16 cosine bank trained in situ")
axis.legend()
figure.tight_layout()
plt.show()
