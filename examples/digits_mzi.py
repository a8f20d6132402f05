"""Plain PyTorch: an MZI mesh layer on digits
==========================================

Train an MLP with a Mach-Zehnder mesh layer on scikit-learn's digits, in plain PyTorch.

Three versions of the same network 64 -> 64 -> [64 x 64 layer] -> 10 are trained side by side:

- all-digital: the middle layer is an ordinary trainable matrix;
- digital twin: the middle layer is the simulated MZI mesh, trained by exact autograd through
  the simulator (an upper bound only a simulator allows);
- in situ: the same mesh treated as a black box, trained from queries only (low-rank surrogate
  for the input gradient, zeroth-order estimate for the phases).

Run ``python examples/digits_mzi.py`` (``--help`` for the options). Prints test accuracy,
device queries and wall time for each, and plots their training losses per epoch.
"""

import argparse
import time

import matplotlib.pyplot as plt
import torch
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import StandardScaler
from torch import nn

from hybridnet import BlackBoxLayer, split_parameters
from hybridnet.physical import MZIMesh


def load_data(seed):
    """Digits split 80/20 (stratified), standardised on the training part, as tensors."""
    X, y = load_digits(return_X_y=True)
    X_train, X_test, y_train, y_test = train_test_split(
        X, y, test_size=0.2, stratify=y, random_state=seed)
    scaler = StandardScaler().fit(X_train)
    as_tensor = lambda a: torch.as_tensor(a, dtype=torch.float32)  # noqa: E731
    return (as_tensor(scaler.transform(X_train)), torch.as_tensor(y_train),
            as_tensor(scaler.transform(X_test)), torch.as_tensor(y_test))


def build_model(training, args):
    """The MLP, its middle layer a BlackBoxLayer over an MZI mesh in the given training mode."""
    device_layer = BlackBoxLayer(
        MZIMesh(args.hidden, args.hidden, seed=args.seed), training=training,
        surrogate_rank=args.rank, zo_samples=args.zo_samples, seed=args.seed)
    model = nn.Sequential(nn.Linear(64, args.hidden), nn.ReLU(), device_layer, nn.ReLU(),
                          nn.Linear(args.hidden, 10))
    return model, device_layer


def train(training, data, args):
    """Train one version; return (test accuracy, device queries, seconds, loss per epoch)."""
    torch.manual_seed(args.seed)
    X_train, y_train, X_test, y_test = data
    model, device_layer = build_model(training, args)
    digital_params, device_params = split_parameters(model)
    groups = [{"params": digital_params, "lr": args.lr}]
    if device_params:
        groups.append({"params": device_params, "lr": args.device_lr})
    optimizer = torch.optim.Adam(groups)
    steps_per_epoch = -(-len(X_train) // args.batch_size)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer,
                                                          args.epochs * steps_per_epoch)
    loss_fn = nn.CrossEntropyLoss()
    order = torch.Generator().manual_seed(args.seed)
    start = time.perf_counter()
    epoch_losses = []
    for _ in range(args.epochs):
        total = 0.0
        for batch in torch.randperm(len(X_train), generator=order).split(args.batch_size):
            optimizer.zero_grad()
            loss = loss_fn(model(X_train[batch]), y_train[batch])
            loss.backward()
            optimizer.step()
            schedule.step()
            total += loss.item() * len(batch)
        epoch_losses.append(total / len(X_train))
    seconds = time.perf_counter() - start
    with torch.no_grad():
        accuracy = (model(X_test).argmax(1) == y_test).float().mean().item()
    return accuracy, device_layer.black_box.n_queries, seconds, epoch_losses


def main(argv=None):
    parser = argparse.ArgumentParser(
        description="Train an MLP with a Mach-Zehnder mesh layer on digits, in plain PyTorch.")
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--hidden", type=int, default=64)
    parser.add_argument("--rank", type=int, default=32, help="surrogate rank")
    parser.add_argument("--zo-samples", type=int, default=10)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--lr", type=float, default=3e-3, help="digital learning rate")
    parser.add_argument("--device-lr", type=float, default=1e-2, help="device learning rate")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    torch.set_num_threads(min(torch.get_num_threads(), 2))
    data = load_data(args.seed)
    rows = [(name, *train(mode, data, args)) for name, mode in
            (("all-digital", "digital"), ("digital twin (autograd)", "backprop"),
             ("in situ (surrogate + ZO)", "surrogate"))]
    print(f"digits, 64-{args.hidden}-[MZI {args.hidden}x{args.hidden}]-10, "
          f"{args.epochs} epochs, surrogate rank {args.rank}, {args.zo_samples} ZO samples")
    print(f"{'training':<26}{'test accuracy':>14}{'device queries':>16}{'seconds':>9}")
    for name, accuracy, queries, seconds, _ in rows:
        print(f"{name:<26}{accuracy:>14.4f}{queries:>16,}{seconds:>9.1f}")
    figure, axis = plt.subplots(figsize=(6, 3.5))
    for name, accuracy, _, _, losses in rows:
        axis.plot(range(1, len(losses) + 1), losses, label=f"{name}: {accuracy:.3f}")
    axis.set(xlabel="epoch", ylabel="training loss", yscale="log",
             title="digits, 64 x 64 MZI mesh layer (legend: test accuracy)")
    axis.legend()
    figure.tight_layout()
    plt.show()


if __name__ == "__main__":
    main()
