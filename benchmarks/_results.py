"""Result files shared by the benchmark scripts: each row records the command that made it,
and a run replaces only its own rows, so runs of different parts can be made separately."""

import json
import pathlib
import shlex
import sys


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


def write_results(name, command, rows, lines):
    """Write ``benchmarks/results/<name>.json`` (the rows and their command) and ``<name>.md``
    (the command, then ``lines``, a table)."""
    folder = pathlib.Path(__file__).parent / "results"
    (folder / f"{name}.json").write_text(json.dumps({"command": command, "rows": rows},
                                                    indent=1))
    (folder / f"{name}.md").write_text(f"Command: `{command}`\n\n" + "\n".join(lines) + "\n")
