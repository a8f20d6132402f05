"""Transient device faults: does a fit finish, and at what accuracy, with retries?

Digits, a 32-32 network whose middle map is a 32 x 32 MRR bank, 8 epochs. The device is wrapped
in ``FaultyBlackBox`` (failures at rate p, NaN answers at p / 2) and trained with and without
retries. Prints a markdown table (the one in doc/reliability.md)::

    python benchmarks/device_faults.py
"""

from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import StandardScaler

from hybridnet import HybridNetClassifier
from hybridnet.physical import BlackBoxError, FaultyBlackBox, MRRBank

SETUPS = [(0.0, 2), (0.01, 2), (0.1, 5), (0.01, 0), (0.1, 0)]  # (failure rate, device_retries)


def main():
    X, y = load_digits(return_X_y=True)
    X = StandardScaler().fit_transform(X)
    X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.25, stratify=y,
                                                        random_state=0)
    print("| failure rate | device_retries | epochs | device calls | injected failures / NaN "
          "answers | retries | test accuracy |")
    print("|---|---|---|---|---|---|---|")
    for rate, retries in SETUPS:
        device = FaultyBlackBox(MRRBank(32, 32, seed=1), fail_rate=rate, nan_rate=rate / 2,
                                seed=2)
        clf = HybridNetClassifier((32, 32), physical_layer=device, max_iter=8,
                                  device_retries=retries, random_state=0)
        try:
            clf.fit(X_train, y_train)
            accuracy = f"{clf.score(X_test, y_test):.4f}"
        except BlackBoxError:
            accuracy = "fit ended by BlackBoxError"
        box = clf.module_[2].black_box  # the estimator's copy of the device
        print(f"| {rate:.0%} | {retries} | {clf.n_iter_} | {box.n_calls} | {box.n_failures} / "
              f"{box.n_nan_answers} | {clf.n_device_retries_} | {accuracy} |")


if __name__ == "__main__":
    main()
