"""The API reference covers the public API, and every entry shows a runnable example.

The examples themselves run as doctests (``--doctest-modules`` in the pytest options); the
Sphinx build (``bash dev.sh docs``, in CI) fails on a reference that no longer resolves.
"""

import importlib
import inspect
import pathlib
import pkgutil
import re

import pytest

import hybridnet

API_PAGE = pathlib.Path(__file__).resolve().parent.parent / "doc" / "api.rst"


def documented_names():
    """Fully qualified names of the API page's autosummary entries."""
    names, module = set(), "hybridnet"
    for line in API_PAGE.read_text().splitlines():
        if match := re.match(r"\.\. currentmodule:: (\S+)", line):
            module = match.group(1)
        elif match := re.fullmatch(r"   ([A-Za-z]\w*(?:\.\w+)*)", line):
            names.add(f"{module}.{match.group(1)}")
    return names


def resolve(name):
    parts = name.split(".")
    for split in range(len(parts), 0, -1):
        try:
            target = importlib.import_module(".".join(parts[:split]))
        except ModuleNotFoundError:
            continue
        for attribute in parts[split:]:
            target = getattr(target, attribute)
        return target
    raise ImportError(name)


def public_objects():
    """Every class and function a user reaches: a module's ``__all__`` where it has one, else
    what the module defines without a leading underscore (private modules skipped)."""
    objects = {}
    modules = [hybridnet] + [importlib.import_module(info.name) for info in pkgutil.walk_packages(
        hybridnet.__path__, "hybridnet.") if not info.name.rsplit(".", 1)[1].startswith("_")]
    for module in modules:
        names = getattr(module, "__all__", None) or [
            name for name, value in vars(module).items()
            if not name.startswith("_") and getattr(value, "__module__", None) == module.__name__]
        for name in names:
            value = getattr(module, name)
            if inspect.isclass(value) or inspect.isfunction(value):
                objects[f"{value.__module__}.{value.__qualname__}"] = value
    return objects


DOCUMENTED = {name: resolve(name) for name in documented_names()}


def test_every_public_class_and_function_is_in_the_api_reference():
    documented = set(map(id, DOCUMENTED.values()))
    missing = sorted(name for name, value in public_objects().items()
                     if id(value) not in documented)
    assert not missing, f"public names missing from doc/api.rst: {missing}"


@pytest.mark.parametrize("name", sorted(DOCUMENTED))
def test_every_api_entry_has_an_examples_section(name):
    docstring = inspect.getdoc(DOCUMENTED[name]) or ""
    assert re.search(r"^Examples\n-{8}\n(.*\n)*?>>> ", docstring, re.MULTILINE), \
        f"{name}'s docstring has no Examples section with a doctest"
