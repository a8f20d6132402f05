"""Result files shared by the benchmark scripts: each row records the command that made it,
and a run replaces only its own rows, so runs of different parts can be made separately."""

import contextlib
import fcntl
import json
import pathlib
import shlex
import sys
import time


def command_line(script, argv):
    """The command that reproduces this run: ``python benchmarks/<script> <arguments>``."""
    arguments = sys.argv[1:] if argv is None else argv
    return shlex.join(["python", f"benchmarks/{script}", *arguments])


def merge_rows(path, new_rows, key, sort_key):
    """Write ``new_rows`` into the JSON list at ``path``, replacing rows with the same key.

    Rows are read afresh, so scripts writing different rows of one file may run side by side.

    Parameters
    ----------
    path : pathlib.Path
    new_rows : list of dict
    key : callable
        The identity of a row (rows with equal keys replace each other).
    sort_key : callable
        Order of the rows in the file.

    Returns
    -------
    list of dict
        All rows, as written.
    """
    replaced = {key(row) for row in new_rows}
    rows = json.loads(path.read_text()) if path.exists() else []
    rows = sorted([row for row in rows if key(row) not in replaced] + new_rows, key=sort_key)
    path.write_text(json.dumps(rows, indent=1))
    return rows


@contextlib.contextmanager
def locked(folder):
    """Hold ``<folder>/.lock`` exclusively, so runs side by side write one result file in turn."""
    with open(pathlib.Path(folder) / ".lock", "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def write_results(name, command, rows, lines):
    """Write ``benchmarks/results/<name>.json`` (the rows and their command) and ``<name>.md``
    (the command, then ``lines``, a table)."""
    folder = pathlib.Path(__file__).parent / "results"
    (folder / f"{name}.json").write_text(json.dumps({"command": command, "rows": rows},
                                                    indent=1))
    (folder / f"{name}.md").write_text(f"Command: `{command}`\n\n" + "\n".join(lines) + "\n")


class SideBySide:
    """The rows of a side-by-side benchmark (PINNSolver against DeepXDE), one per problem and
    side, in ``<folder>/<name>.json``, with ``<name>.md`` rewritten after every row.

    Runs of different problems may go side by side: each write holds a file lock and merges
    into the rows as they are on disk, and a skipped row never replaces a finished one.

    Parameters
    ----------
    folder : pathlib.Path
    name : str
        Stem of the two files.
    problems, sides : sequence of str
        The order of the rows.
    heading : str
        The markdown above the table.
    table : callable
        ``table(rows) -> str``, the markdown of the rows.
    """

    def __init__(self, folder, name, problems, sides, heading, table):
        self.folder, self.name = pathlib.Path(folder), name
        self.problems, self.sides = list(problems), list(sides)
        self.heading, self.table = heading, table

    def _order(self, row):
        def index(items, item):
            return items.index(item) if item in items else len(items)

        return index(self.problems, row["problem"]), index(self.sides, row["side"])

    def rows(self):
        """Every row on disk, skipped ones included."""
        path = self.folder / f"{self.name}.json"
        return json.loads(path.read_text()) if path.exists() else []

    def finished(self):
        """The rows that ran, by (problem, side)."""
        return {(r["problem"], r["side"]): r for r in self.rows() if not r.get("skipped")}

    def record(self, row):
        """Merge ``row`` into the results and rewrite the markdown."""
        with locked(self.folder):
            if row.get("skipped") and (row["problem"], row["side"]) in self.finished():
                return
            rows = merge_rows(self.folder / f"{self.name}.json", [row],
                              key=lambda r: (r["problem"], r["side"]), sort_key=self._order)
            (self.folder / f"{self.name}.md").write_text(self.heading + self.table(rows) + "\n")


def check_pinnsolver_trains(pde, test_x, n_components, fit_args=()):
    """Fit a tiny PINNSolver on ``pde`` for 2 steps and check the shape of its predictions, so
    a feature that the constructor accepts but the solver cannot train fails before a long
    run (raises what went wrong)."""
    import numpy as np

    from hybridnet import PINNSolver

    probe = PINNSolver(pde, hidden_layer_sizes=(8,), n_collocation=16, n_boundary=16,
                       max_iter=2, random_state=0).fit(*fit_args)
    shape = np.asarray(probe.predict(test_x[:4])).reshape(4, -1).shape
    if shape != (4, n_components):
        raise ValueError(f"predict gave {shape} values for 4 points and {n_components} "
                         "components")


class CheckpointClock:
    """Training seconds of a fit that may be killed and resumed from its checkpoint file.

    A run that resumes adds what the runs before it spent, each from its start to the last
    write of the checkpoint it left (the work after that write is done again), so the total is
    what one uninterrupted run would report, give or take the loading.

    Parameters
    ----------
    checkpoint : pathlib.Path
        The fit's ``checkpoint=`` file; the clock keeps ``<checkpoint>.clock.json`` beside it.
    """

    def __init__(self, checkpoint):
        self.checkpoint = pathlib.Path(checkpoint)
        self.path = self.checkpoint.with_name(self.checkpoint.name + ".clock.json")
        self.earlier, self._start = 0.0, None

    def start(self):
        """Call just before ``fit``."""
        self.earlier = 0.0
        if self.checkpoint.exists() and self.path.exists():
            state = json.loads(self.path.read_text())
            self.earlier = state["earlier"] + max(
                0.0, self.checkpoint.stat().st_mtime - state["started"])
        self.path.write_text(json.dumps({"earlier": self.earlier, "started": time.time()}))
        self._start = time.perf_counter()

    def seconds(self):
        """Training seconds so far, the earlier runs' included."""
        return self.earlier + time.perf_counter() - self._start

    def remove(self):
        """Forget the run once its result is recorded."""
        self.checkpoint.unlink(missing_ok=True)
        self.path.unlink(missing_ok=True)
