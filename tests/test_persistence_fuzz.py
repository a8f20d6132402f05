"""Damaged and hostile model files: hybridnet.load either returns a working model or raises
ModelFileError naming the file (or, for a file asking for one, the documented error to pass an
object back), never another exception, and in bounded memory."""

import dataclasses
import io
import json
import os
import pathlib
import pickle
import re
import struct
import time
import tracemalloc
import zipfile
import zlib

import numpy as np
import pytest
import torch
from hypothesis import event, given, settings
from hypothesis import strategies as st
from sklearn.datasets import load_iris
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

import hybridnet
from hybridnet import HybridNetClassifier
from hybridnet.persistence import MAX_CONFIG_BYTES, ModelFileError

# database=None: no .hypothesis folder in the working tree
FUZZ = settings(max_examples=100, deadline=None, database=None)
GIB = 2**30
BOMB = 3 * GIB // 2  # what a bomb inflates to: 1.5 GiB, from about 1.5 MB


@dataclasses.dataclass(repr=False)  # hypothesis shows the arguments of a failing example
class _Saved:
    X: np.ndarray
    clf: HybridNetClassifier
    files: dict
    path: pathlib.Path

    def __iter__(self):
        return iter((self.X, self.clf, self.files, self.path))


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    """A tiny fitted classifier with an MRR bank and a pipeline holding one, saved; each
    example writes its mutated file to the same path."""
    X, y = load_iris(return_X_y=True)
    X = X[::3]
    y = y[::3]
    clf = HybridNetClassifier(hidden_layer_sizes=(8, 8), physical_layer="mrr", max_iter=2,
                              random_state=0).fit(X, y)
    folder = tmp_path_factory.mktemp("fuzz")
    files = {}
    for name, model in (("classifier", clf),
                        ("pipeline", make_pipeline(StandardScaler(), clf).fit(X, y))):
        hybridnet.save(model, folder / f"{name}.hnet")
        files[name] = (folder / f"{name}.hnet").read_bytes()
    return _Saved(X, clf, files, folder / "mutated.hnet")


def _members(data):
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        return {name: archive.read(name) for name in archive.namelist()}


def _write(path, members):
    """A model file of these members, stored the way hybridnet.save stores them."""
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data, compress_type=zipfile.ZIP_DEFLATED
                             if name == "config.json" else zipfile.ZIP_STORED)


def _load(path):
    """hybridnet.load, or None when it raises what load documents for a file: ModelFileError,
    or the ValueError asking for an object to pass back (a mutated config can claim any
    hyperparameter needs one); either names the file."""
    try:
        return hybridnet.load(path)
    except ModelFileError as error:
        assert str(path) in str(error)
        event(_reason(error, path))
    except ValueError as error:
        assert str(path) in str(error) and "pass it back" in str(error), error
        event("an object to pass back")
    return None


def _check_outcome(path, X):
    """Load ``path``: a refusal must be one of load's documented errors naming the file; a
    loaded model must predict labels of its classes and probabilities that sum to 1."""
    model = _load(path)
    if model is None:
        return None
    event("loaded")
    labels = model.predict(X)
    assert labels.shape == (len(X),) and np.isin(labels, model.classes_).all()
    proba = model.predict_proba(X)
    assert np.isfinite(proba).all() and np.allclose(proba.sum(axis=1), 1)
    return model


def _reason(error, path):
    """The start of a refusal's message, for ``--hypothesis-show-statistics``."""
    reason = str(error).removeprefix(f"cannot load {path}: ")
    return "refused: " + " ".join(re.sub(r"[\d,]{3,}|'[^']*'", "_", reason).split()[:6])


def _structure(data):
    """Byte ranges of the zip's own structure: local headers, and (about) from where the
    central directory starts to the end."""
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        infos = archive.infolist()
    starts = [info.header_offset for info in infos]
    central = max(info.header_offset + 30 + len(info.filename) + info.compress_size
                  for info in infos)
    return [(start, start + 64) for start in starts] + [(central, len(data))]


@FUZZ
@given(data=st.data(), which=st.sampled_from(["classifier", "pipeline"]))
def test_damaged_bytes_load_or_are_refused_cleanly(saved, data, which):
    X, clf, files, path = saved
    original = bytearray(files[which])
    region = data.draw(st.sampled_from([(0, len(original))] + _structure(bytes(original))))
    mutated = original
    for _ in range(data.draw(st.integers(1, 3))):
        low = min(region[0], len(mutated) - 1)  # the region may have been cut off
        position = data.draw(st.integers(low, max(low, min(region[1], len(mutated)) - 1)))
        operation = data.draw(st.sampled_from(["flip", "delete", "insert", "truncate"]))
        if operation == "flip":
            mutated[position] ^= data.draw(st.integers(1, 255))
        elif operation == "delete":
            del mutated[position:position + data.draw(st.integers(1, 16))]
        elif operation == "insert":
            mutated[position:position] = data.draw(st.binary(min_size=1, max_size=16))
        else:
            del mutated[position:]
        if not mutated:
            break
    path.write_bytes(bytes(mutated))
    model = _check_outcome(path, X)
    if model is not None and which == "classifier":
        # a flip the CRCs let through touched only the zip's bookkeeping: the same model
        np.testing.assert_array_equal(model.predict_proba(X), clf.predict_proba(X))


# JSON values that also reach the decoder's tags and the names of members and classes
_WORDS = st.sampled_from([
    "__tuple__", "__npy__", "__array__", "dtype", "__scalar__", "__slice__", "__type__",
    "__dtype__", "__sklearn__", "state", "__hybridnet__", "params", "fitted", "tensors",
    "__pass_at_load__", "__problem__", "arguments", "HybridNetClassifier", "PINNSolver",
    "sklearn.preprocessing._data.StandardScaler", "os.system", "builtins.eval", "heat_1d",
    "arrays/0.npy", "tensors/1.pt", "config.json", "<f4", "<i8", "|O", "|V8", "<U3",
    "numpy.float64", "builtins.float", "mrr", "cpu", "forward", "weight", "training"])
_JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-10, 100) | st.floats() | st.text(max_size=6)
    | _WORDS,
    lambda children: st.lists(children, max_size=4)
    | st.dictionaries(_WORDS | st.text(max_size=4), children, max_size=3),
    max_leaves=10)


def _paths(value, path=()):
    """Every place in a JSON tree, as the keys leading to it."""
    yield path
    items = value.items() if isinstance(value, dict) else enumerate(value) \
        if isinstance(value, list) else ()
    for key, child in items:
        yield from _paths(child, (*path, key))


@FUZZ
@given(data=st.data())
def test_mutated_config_loads_or_is_refused_cleanly(saved, data):
    """Valid JSON with values of the wrong type or range, missing and extra keys, anywhere
    in config.json; and edits of its text."""
    X, _, files, path = saved
    members = _members(files["classifier"])
    config = json.loads(members["config.json"])
    for _ in range(data.draw(st.integers(1, 3))):
        place = data.draw(st.sampled_from(list(_paths(config))))
        parent, key = None, None
        target = config
        for step in place:
            parent, key, target = target, step, target[step]
        operation = data.draw(st.sampled_from(["replace", "delete", "add"]))
        if operation == "add" and isinstance(target, dict):
            target[data.draw(_WORDS | st.text(max_size=4))] = data.draw(_JSON)
        elif operation == "delete" and parent is not None:
            del parent[key]
        elif parent is not None:
            parent[key] = data.draw(_JSON)
    text = json.dumps(config)
    if data.draw(st.booleans()):  # and a few characters of the text itself
        position = data.draw(st.integers(0, len(text) - 1))
        text = text[:position] + data.draw(st.text(max_size=3)) + text[
            position + data.draw(st.integers(0, 3)):]
    members["config.json"] = text.encode()
    _write(path, members)
    _check_outcome(path, X)


class _Payload:
    """A pickled object that names code to run (os.system) when unpickled."""

    def __reduce__(self):
        return (os.system, ("exit 1",))


_DTYPES = st.sampled_from([torch.float32, torch.float64, torch.int64, torch.uint8, torch.bool,
                           torch.complex64])


@st.composite
def _tensor(draw):
    shape = draw(st.lists(st.integers(0, 9), max_size=3))
    values = torch.from_numpy(np.asarray(draw(st.lists(
        st.floats(width=32), min_size=int(np.prod(shape)), max_size=int(np.prod(shape)))),
        dtype=np.float32)).reshape(shape)
    return values.to(draw(_DTYPES))


_TREES = st.recursive(  # what torch's weights-only unpickler builds: tensors, plain values
    _tensor() | st.integers() | st.text(max_size=4) | st.none(),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(
        st.sampled_from(["module", "generators", "optimizer", "batch_generator", "state"]),
        children, max_size=4),
    max_leaves=6)


def _torch_bytes(value):
    buffer = io.BytesIO()
    torch.save(value, buffer)
    return buffer.getvalue()


def _replace_tensor(draw, tensors, which):
    module = tensors["module"]
    key = draw(st.sampled_from(sorted(module)))
    if which == "tensor":
        module[key] = draw(_tensor())
    elif which == "value":  # same shape and dtype, another value: NaN, inf or any other
        # (finite weights so large that the network overflows are the model's, not the file's)
        module[key] = torch.full_like(module[key], draw(
            st.floats(-1e3, 1e3) | st.sampled_from([np.nan, np.inf, -np.inf])))
    else:
        del tensors[draw(st.sampled_from(sorted(tensors)))]
    return tensors


@FUZZ
@given(data=st.data(), kind=st.sampled_from(
    ["tensor", "value", "drop", "random_tree", "pickle", "torch_object", "bytes", "size"]))
def test_replaced_tensors_load_or_are_refused_cleanly(saved, data, kind):
    """The tensors member replaced: by other tensors, pickles of arbitrary objects, random
    bytes, or with a forged declared size."""
    X, _, files, path = saved
    members = _members(files["classifier"])
    name = json.loads(members["config.json"])["estimator"]["tensors"]
    real = torch.load(io.BytesIO(members[name]), weights_only=True)
    draw = data.draw
    if kind in ("tensor", "value", "drop"):
        members[name] = _torch_bytes(_replace_tensor(draw, real, kind))
    elif kind == "random_tree":
        members[name] = _torch_bytes(draw(_TREES))
    elif kind == "pickle":
        members[name] = pickle.dumps(draw(_JSON | st.just(_Payload())),
                                     protocol=draw(st.integers(0, 5)))
    elif kind == "torch_object":  # objects other than tensors, inside torch's archive
        members[name] = _torch_bytes({**real, "module": draw(st.sampled_from(
            [_Payload(), slice(1, 2), {1, 2}, np.float64(1.0), np.zeros(2),
             torch.nn.Linear(2, 2)]))})
    elif kind == "bytes":
        members[name] = draw(st.binary(max_size=200))
    if kind == "size":  # every member stored as it is, the tensors declaring another size
        path.write_bytes(_zip([(n, d, zipfile.ZIP_STORED, draw(st.integers(0, 2**32 - 1))
                                if n == name else len(d), 0) for n, d in members.items()]))
    else:
        _write(path, members)
    _check_outcome(path, X)


@FUZZ
@given(data=st.data())
def test_replaced_arrays_load_or_are_refused_cleanly(saved, data):
    """An array member replaced: other dtypes and shapes, object arrays (numpy's pickle
    route), forged headers, random bytes."""
    X, _, files, path = saved
    members = _members(files["pipeline"])
    name = data.draw(st.sampled_from(sorted(n for n in members if n.endswith(".npy"))))
    kind = data.draw(st.sampled_from(["array", "object", "header", "bytes"]))
    buffer = io.BytesIO()
    if kind == "array":
        np.save(buffer, data.draw(st.sampled_from([
            np.zeros(4), np.arange(3), np.ones((2, 2), np.float32), np.array(["a", "b"]),
            np.array([np.nan, np.inf]), np.zeros(0), np.array(True)])))
    elif kind == "object":
        np.save(buffer, np.array([data.draw(_JSON), _Payload()], dtype=object),
                allow_pickle=True)
    elif kind == "header":  # the header declares another shape than the data holds
        np.save(buffer, np.zeros(4))
        raw = buffer.getvalue().replace(b"(4,)", data.draw(st.sampled_from(
            [b"(9,)", b"(0,)", b"(2**62,)", b"(99999999999,)", b"(-1,)", b"(4, 4)"])), 1)
        buffer = io.BytesIO(raw)
    else:
        buffer.write(data.draw(st.binary(max_size=200)))
    members[name] = buffer.getvalue()
    _write(path, members)
    model = _load(path)
    if model is None:
        return
    event("loaded")
    # scikit-learn's fitted values are data it checks itself: a clean load may still hold a
    # wrong one, which its own methods report; ours must be untouched
    np.testing.assert_array_equal(model[-1].classes_, np.arange(3))


def _zip(entries):
    """A zip archive of ``(name, payload, method, declared_size, flags)`` entries, written by
    hand: zipfile can neither store an already deflated payload nor declare a size other
    than the true one. The CRC is that of the payload (wrong for a deflated one; a refused
    member is never read that far)."""
    local, central = bytearray(), bytearray()
    for name, payload, method, declared, flags in entries:
        encoded, crc, offset = name.encode(), zlib.crc32(payload), len(local)
        local += struct.pack("<IHHHHHIIIHH", 0x04034B50, 20, flags, method, 0, 0x21, crc,
                             len(payload), declared, len(encoded), 0) + encoded + payload
        central += struct.pack("<IHHHHHHIIIHHHHHII", 0x02014B50, 20, 20, flags, method, 0,
                               0x21, crc, len(payload), declared, len(encoded), 0, 0, 0, 0, 0,
                               offset) + encoded
    end = struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, len(entries), len(entries),
                      len(central), len(local), 0)
    return bytes(local + central + end)


def _deflated_zeros(size):
    """A raw deflate stream of ``size`` zero bytes (a multiple of 1 MiB), in about size/1000
    bytes: one fully flushed MiB repeated (deflating the whole would take seconds)."""
    compressor = zlib.compressobj(9, zlib.DEFLATED, -15)
    segment = compressor.compress(bytes(2**20)) + compressor.flush(zlib.Z_FULL_FLUSH)
    return segment * (size // 2**20) + zlib.compressobj(9, zlib.DEFLATED, -15).flush()


def test_the_bomb_builder_inflates_to_what_it_declares():
    stream = _deflated_zeros(8 * 2**20)
    assert len(stream) < 10_000
    assert zlib.decompress(stream, -15) == bytes(8 * 2**20)
    archive = zipfile.ZipFile(io.BytesIO(_zip([("a", zlib.compress(b"x" * 99)[2:-4],
                                               zipfile.ZIP_DEFLATED, 99, 0)])))
    assert archive.getinfo("a").file_size == 99


def _version_1(members):
    """config.json and tensors.pt of a saved single classifier in format version 1: its node
    on top, classes_ inline (tests/test_persistence.py::_as_version_1 converts any)."""
    node = json.loads(members["config.json"])["estimator"]
    classes = np.load(io.BytesIO(members[node["fitted"]["classes_"]["__npy__"]]))
    fitted = {**node["fitted"], "classes_": {"__array__": classes.tolist(),
                                             "dtype": classes.dtype.str}}
    config = {"format": "hybridnet-model", "version": 1, "class": node["__hybridnet__"],
              "params": node["params"], "fitted": fitted}
    return json.dumps(config).encode(), members[node["tensors"]]


def _bomb_file(files, case):
    """A model file holding a bomb, per ``case``."""
    members = _members(files["classifier"])
    config, tensors = _version_1(members)
    deflate = zlib.compressobj(9, zlib.DEFLATED, -15)
    compressed_config = deflate.compress(config) + deflate.flush()
    bomb = _deflated_zeros(BOMB)
    stored, deflated = zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED
    if case == "version_1_tensors":  # the file: 1.5 MB, tensors.pt inflating to 1.5 GB
        entries = [("config.json", config, stored, len(config), 0),
                   ("tensors.pt", bomb, deflated, BOMB, 0)]
    elif case == "tensors_lying":  # declares the size of the real tensors
        entries = [("config.json", config, stored, len(config), 0),
                   ("tensors.pt", bomb, deflated, len(tensors), 0)]
    elif case == "config":
        entries = [("config.json", bomb, deflated, BOMB, 0)]
    elif case == "config_lying":
        entries = [("config.json", bomb, deflated, len(config), 0)]
    elif case == "many":  # three honest bombs: 4.5 GiB declared in all
        entries = [("config.json", compressed_config, deflated, len(config), 0)] + [
            (f"arrays/{i}.npy", bomb, deflated, BOMB, 0) for i in range(3)]
    elif case == "version_2_array":
        node = json.loads(members["config.json"])
        entries = [(name, data, stored, len(data), 0) for name, data in members.items()
                   if name != "config.json"]
        array = node["estimator"]["fitted"]["classes_"]["__npy__"]
        entries = [(n, bomb, deflated, BOMB, 0) if n == array else (n, d, m, s, f)
                   for n, d, m, s, f in entries]
        text = members["config.json"]
        entries.append(("config.json", text, stored, len(text), 0))
    elif case == "inner_torch_record":  # torch's own archive holding a deflated record
        inner = _members(tensors)
        record = next(n for n in inner if "/data/" in n and not n.endswith("serialization_id"))
        small = 2**28  # 256 MiB: its 0.3 MB must fit the bound on the tensors member
        archive = _zip([(n, _deflated_zeros(small), deflated, small, 0) if n == record else
                        (n, d, stored, len(d), 0) for n, d in inner.items()])
        entries = [("config.json", config, stored, len(config), 0),
                   ("tensors.pt", archive, stored, len(archive), 0)]
    else:  # an encrypted member
        entries = [("config.json", config, stored, len(config), 0),
                   ("tensors.pt", tensors, stored, len(tensors), 0x1)]
    return _zip(entries)


@pytest.mark.parametrize("case, expected", [
    ("version_1_tensors", r"tensors\.pt declares 1,610,612,736 bytes, more than the "
                          r"[\d,]+ allowed"),
    ("tensors_lying", r"tensors\.pt is damaged \(Bad CRC-32"),
    ("config", r"config\.json declares 1,610,612,736 bytes, more than the "
               rf"{MAX_CONFIG_BYTES:,} allowed"),
    ("config_lying", r"config\.json is damaged \(Bad CRC-32"),
    ("many", r"its arrays and tensors declare 4,831,838,208 bytes, more than the "
             r"4,294,967,296 allowed \(MAX_DATA_BYTES\)"),
    ("version_2_array", r"arrays/\d+\.npy is compressed \([\d,]+ bytes for 1,610,612,736\), "
                        "but hybridnet.save stores it uncompressed"),
    ("inner_torch_record", "its tensors member has compressed records"),
    ("encrypted", r"tensors\.pt is encrypted"),
])
def test_a_zip_bomb_is_refused_quickly_in_bounded_memory(saved, case, expected):
    X, _, files, path = saved
    path.write_bytes(_bomb_file(files, case))
    assert path.stat().st_size < 5 * 2**20
    tracemalloc.start()
    start = time.perf_counter()
    try:
        with pytest.raises(ModelFileError, match=expected) as error:
            hybridnet.load(path)
        seconds = time.perf_counter() - start
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert str(path) in str(error.value)
    # inflating 1.5 GiB takes over 4 s and 1.5 GiB; a refusal, a fraction of either
    assert peak < 100 * 2**20, f"peak {peak / 2**20:.0f} MiB"
    assert seconds < 1.5, f"{seconds:.2f} s"


def test_a_member_is_read_no_further_than_it_declares(saved, monkeypatch):
    """The reader's own bound, whatever the zip reader under it does: a member whose stream
    yields more than its declared size (zipfile itself stops there) is refused in chunks."""
    X, _, files, path = saved
    path.write_bytes(files["classifier"])
    declared = zipfile.ZipFile(path).getinfo("config.json").file_size
    served = []

    class Endless(io.RawIOBase):  # zeros, as many as asked, for ever
        def read(self, size=-1):
            served.append(size)
            return bytes(size)

    monkeypatch.setattr(zipfile.ZipFile, "open", lambda self, info: Endless())
    with pytest.raises(ModelFileError, match=rf"config\.json holds more than the "
                                             rf"{declared:,} bytes it declares"):
        hybridnet.load(path)
    assert len(served) == 1  # one chunk, then refused
