"""``checkpoint=``: a fit saved every few epochs resumes, after its process was killed, to the
model an uninterrupted fit makes."""

import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from sklearn.datasets import load_iris

import hybridnet
from hybridnet import HybridNetClassifier, HybridNetRegressor

# Run in a fresh process: fit iris with a noisy MZI mesh whose simulation ends the process
# (os._exit, no clean-up at all) on its KILL_AT-th call, and write the fitted model's
# probabilities. A device of the network's own class keeps its noise stream in the network,
# where the checkpoint saves it.
SCRIPT = textwrap.dedent("""
    import os, sys
    import numpy as np
    from sklearn.datasets import load_iris
    from hybridnet import HybridNetClassifier
    from hybridnet.physical import MZIMesh

    class DyingMesh(MZIMesh):
        calls = 0

        def _query(self, x, params):
            if self.fabrication_error:  # the chip, not its twins (copies without the error)
                type(self).calls += 1
                if type(self).calls == int(sys.argv[1]):
                    os._exit(3)
            return super()._query(x, params)

    X, y = load_iris(return_X_y=True)
    options = eval(sys.argv[4])
    model = HybridNetClassifier((8, 8), physical_layer=DyingMesh(
                                    8, 8, fabrication_error=0.1, detector_noise=0.01, seed=0),
                                max_iter=8, batch_size=32, random_state=0,
                                checkpoint=sys.argv[2] or None, checkpoint_every=2, **options)
    model.fit(X, y)
    np.save(sys.argv[3], np.concatenate([model.predict_proba(X).ravel(),
                                         model.loss_curve_, [model.n_device_queries_,
                                                             model.n_device_settings_]]))
    np.save(sys.argv[3] + ".calls.npy", [DyingMesh.calls])
""")


def run(tmp_path, kill_at, checkpoint, options):
    script = tmp_path / "fit.py"
    script.write_text(SCRIPT)
    out = tmp_path / f"out-{kill_at}.npy"
    done = subprocess.run([sys.executable, str(script), str(kill_at), checkpoint, str(out),
                           repr(options)], capture_output=True, text=True, timeout=600,
                          env={**os.environ, "OMP_NUM_THREADS": "1"})
    if done.returncode != 0:
        return done.returncode, done.stderr, None
    return 0, np.load(out), int(np.load(f"{out}.calls.npy")[0])


@pytest.mark.parametrize("options", [
    {},
    {"training": "physics_aware"},
    {"training": "physics_aware", "recalibrate_every": 3},  # refits at epochs 3 and 6
    {"training": "bp_free", "zo_estimator": "hybrid", "n_iter_no_change": 4},
    {"early_stopping": True, "n_iter_no_change": 3, "validation_fraction": 0.2},
], ids=["surrogate", "physics_aware", "physics_aware-recalibrating", "bp_free-hybrid",
        "early_stopping"])
def test_a_killed_fit_resumes_to_the_uninterrupted_model(tmp_path, options):
    code, uninterrupted, calls = run(tmp_path, 0, "", options)
    assert code == 0, uninterrupted
    checkpoint = str(tmp_path / "fit.hnet")
    # Killed about two thirds of the way (after epoch 4's checkpoint, before epoch 6's).
    code, _, _ = run(tmp_path, 1 + 5 * calls // 8, checkpoint, options)
    assert code == 3 and os.path.exists(checkpoint)
    code, resumed, _ = run(tmp_path, 0, checkpoint, options)
    assert code == 0, resumed
    np.testing.assert_array_equal(resumed, uninterrupted)


def test_a_checkpoint_of_other_settings_or_data_is_refused_by_name(tmp_path):
    X, y = load_iris(return_X_y=True)
    path = tmp_path / "fit.hnet"
    options = dict(hidden_layer_sizes=(8, 8), max_iter=2, random_state=0, checkpoint=path)
    model = HybridNetClassifier(**options).fit(X, y)
    assert path.exists()
    again = HybridNetClassifier(**options).fit(X, y)  # complete: nothing left to train
    np.testing.assert_array_equal(again.predict_proba(X), model.predict_proba(X))
    assert again.history_[:, "train_loss"] == model.history_[:, "train_loss"]
    with pytest.raises(ValueError, match=r"other hyperparameters: learning_rate=0.003 \(now "
                                         r"0.01\)"):
        HybridNetClassifier(**options, learning_rate=1e-2).fit(X, y)
    with pytest.raises(ValueError, match="other training data"):
        HybridNetClassifier(**options).fit(X[::-1], y[::-1])
    with pytest.raises(ValueError, match="not a checkpoint of a HybridNetRegressor fit"):
        HybridNetRegressor(**options).fit(X, y)
    with pytest.raises(ValueError, match="not supported with training='calibrated_twin'"):
        HybridNetClassifier(**options, training="calibrated_twin").fit(X, y)
    hybridnet.save(HybridNetClassifier((8, 8), max_iter=1).fit(X, y),
                   tmp_path / "model.hnet")
    with pytest.raises(ValueError, match="not a checkpoint"):
        HybridNetClassifier(**{**options, "checkpoint": tmp_path / "model.hnet"}).fit(X, y)
