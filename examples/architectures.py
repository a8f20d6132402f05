"""Devices inside a transformer and a CNN
======================================

Devices inside a transformer and a CNN: ``hybridnet.models``.

1. A character-level GPT (``CharTransformer``) whose MLP down-projections are microring banks,
   trained in situ in a plain PyTorch loop with a loss at every position, on the one text
   every Python has offline: the Zen of Python (``import this``). Each device sees every
   position of every window (batch x time vectors per call).
2. A small CNN (``SmallCNN``) on scikit-learn's 8 x 8 digits through
   ``HybridNetClassifier(module=...)``, the hidden map of its classifier an SLM
   (``mix_device=True`` would make the 1x1 channel mixing a device too).

Prints the losses, accuracies and device queries and plots both learning curves; about 15
seconds on one core. The
benchmark with Shakespeare, Fashion-MNIST and MNIST is ``benchmarks/architectures.py``.

Run ``python examples/architectures.py``.
"""

import codecs
import contextlib
import io
import math

import matplotlib.pyplot as plt
import torch
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import StandardScaler
from torch import nn

from hybridnet import BlackBoxLayer, HybridNetClassifier, split_parameters
from hybridnet.models import CharTransformer, SmallCNN


def zen_of_python():
    with contextlib.redirect_stdout(io.StringIO()):  # importing it prints the text
        import this
    return codecs.decode(this.s, "rot13")


def language_model(steps=150, context=32):
    text = zen_of_python()
    vocabulary = sorted(set(text))
    ids = torch.tensor([vocabulary.index(c) for c in text])
    torch.manual_seed(0)
    model = CharTransformer(len(vocabulary), context, width=32, n_heads=4, n_layers=2,
                            device="mrr", device_maps=("down",), seed=0)
    digital, device = split_parameters(model)
    optimizer = torch.optim.Adam([{"params": digital, "lr": 3e-3},
                                  {"params": device, "lr": 1e-2}])
    offsets = torch.arange(context + 1)
    bits = []
    for step in range(1, steps + 1):
        windows = ids[torch.randint(0, len(ids) - context - 1, (16,))[:, None] + offsets]
        logits = model(windows[:, :-1])
        loss = nn.functional.cross_entropy(logits.reshape(-1, len(vocabulary)),
                                           windows[:, 1:].reshape(-1))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        bits.append(loss.item() / math.log(2))
        if step % 50 == 0:
            print(f"transformer step {step}: {bits[-1]:.2f} bits per character")
    queries = sum(m.device_queries() for m in model.modules() if isinstance(m, BlackBoxLayer))
    print(f"  {queries:,} device queries in {steps} steps (two MRR banks, 128 -> 32)")
    return bits


def cnn():
    X, y = load_digits(return_X_y=True)
    X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.2, random_state=0)
    scaler = StandardScaler().fit(X_train)
    X_train, X_test = scaler.transform(X_train), scaler.transform(X_test)
    torch.manual_seed(0)
    module = SmallCNN((1, 8, 8), channels=(16,), hidden=32, device="slm", seed=0)
    model = HybridNetClassifier(module=module, max_iter=15, learning_rate=1e-2,
                                random_state=0).fit(X_train, y_train)
    print(f"CNN with an SLM classifier: test accuracy {model.score(X_test, y_test):.4f}, "
          f"{model.n_device_queries_:,} device queries")
    return model


def main():
    bits = language_model()
    model = cnn()
    figure, (lm_axis, cnn_axis) = plt.subplots(1, 2, figsize=(9, 3.5))
    lm_axis.plot(range(1, len(bits) + 1), bits)
    lm_axis.set(xlabel="step", ylabel="bits per character (training batch)",
                title="GPT with MRR down-projections")
    cnn_axis.plot(model.history_[:, "epoch"], model.history_[:, "train_loss"])
    cnn_axis.set(xlabel="epoch", ylabel="training loss", yscale="log",
                 title="CNN with an SLM classifier")
    figure.tight_layout()
    plt.show()


if __name__ == "__main__":
    main()
