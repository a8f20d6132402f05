"""Write the intersphinx inventories of NumPy, SciPy, scikit-learn, PyTorch and Python.

The machines that build these docs reach package registries only, not the projects' web
sites, so intersphinx cannot download their ``objects.inv``. This script writes them from the
installed packages instead: every public class, function and method of the modules below,
pointing at the page each project's own documentation gives it (the URL layouts of the
current releases). Run it after upgrading one of them::

    python doc/_inventories/make_inventories.py
"""

import importlib
import inspect
import pathlib
import zlib

HERE = pathlib.Path(__file__).parent

# project -> the modules whose public names are listed
PROJECTS = {
    "numpy": ["numpy", "numpy.random", "numpy.linalg", "numpy.fft"],
    "scipy": ["scipy.optimize", "scipy.linalg", "scipy.stats", "scipy.sparse", "scipy.integrate",
              "scipy.interpolate", "scipy.special"],
    "sklearn": ["sklearn", "sklearn.base", "sklearn.model_selection", "sklearn.pipeline",
                "sklearn.preprocessing", "sklearn.metrics", "sklearn.datasets", "sklearn.utils",
                "sklearn.utils.validation", "sklearn.exceptions", "sklearn.linear_model",
                "sklearn.decomposition"],
    "torch": ["torch", "torch.nn", "torch.nn.functional", "torch.optim",
              "torch.optim.lr_scheduler", "torch.autograd", "torch.func"],
}

# Pages that do not follow a project's generated/<name>.html layout.
SPECIAL = {
    "numpy.ndarray": "reference/generated/numpy.ndarray.html",
    "numpy.random.Generator": "reference/random/generator.html#numpy.random.Generator",
    "numpy.random.SeedSequence":
        "reference/random/bit_generators/generated/numpy.random.SeedSequence.html",
    "numpy.random.RandomState": "reference/random/legacy.html#numpy.random.RandomState",
    "numpy.random.default_rng": "reference/random/generator.html#numpy.random.default_rng",
    "torch.Tensor": "tensors.html#torch.Tensor",
    "torch.device": "tensor_attributes.html#torch.device",
    "torch.dtype": "tensor_attributes.html#torch.dtype",
    "torch.nn.Parameter": "generated/torch.nn.parameter.Parameter.html",
}
# Where a class lives in a private module that show-inheritance names: name -> public name.
ALIASES = {"torch.optim.optimizer.Optimizer": "torch.optim.Optimizer",
           "torch.nn.modules.module.Module": "torch.nn.Module"}


def page(project, name):
    """The page of ``name`` relative to the project's documentation root."""
    if name in SPECIAL:
        return SPECIAL[name]
    if project == "numpy":
        if name.startswith("numpy.random."):
            return f"reference/random/generated/{name}.html"
        return f"reference/generated/{name}.html"
    if project == "scipy":
        return f"reference/generated/{name}.html"
    if project == "sklearn":
        return f"modules/generated/{name}.html"
    return f"generated/{name}.html"  # torch


def public_names(module):
    names = getattr(module, "__all__", None)
    if names is None:
        names = [n for n in dir(module) if not n.startswith("_")]
    return [n for n in names if not n.startswith("_")]


def entries(project, modules):
    seen = {}
    for module_name in modules:
        module = importlib.import_module(module_name)
        for name in public_names(module):
            try:
                obj = getattr(module, name)
            except (AttributeError, ImportError):  # experimental or lazily missing names
                continue
            full = f"{module_name}.{name}"
            if inspect.isclass(obj):
                url = page(project, full)
                seen[full] = ("py:class", url)
                base = url.split("#")[0]
                for member, value in vars(obj).items():
                    if not member.startswith("_") and callable(value):
                        seen[f"{full}.{member}"] = ("py:method", f"{base}#{full}.{member}")
            elif callable(obj):
                seen[full] = ("py:function", page(project, full))
    for alias, name in ALIASES.items():
        if name in seen:
            seen[alias] = seen[name]
    return seen


def write(path, project, version, seen):
    lines = [f"{name} {role} 1 {url} -" for name, (role, url) in sorted(seen.items())]
    header = (f"# Sphinx inventory version 2\n# Project: {project}\n# Version: {version}\n"
              "# The remainder of this file is compressed using zlib.\n")
    path.write_bytes(header.encode() + zlib.compress("\n".join(lines).encode() + b"\n"))


# The few standard-library names the docstrings name: name -> (role, page).
PYTHON = {
    **{name: ("py:class", f"library/functions.html#{name}") for name in ("int", "float", "bool")},
    **{name: ("py:class", f"library/stdtypes.html#{name}")
       for name in ("str", "dict", "list", "tuple")},
    "callable": ("py:function", "library/functions.html#callable"),
    **{name: ("py:exception", f"library/exceptions.html#{name}")
       for name in ("ValueError", "TypeError", "RuntimeError", "TimeoutError", "UserWarning")},
    "pathlib.Path": ("py:class", "library/pathlib.html#pathlib.Path"),
    "abc.ABC": ("py:class", "library/abc.html#abc.ABC"),
    "warnings.warn": ("py:function", "library/warnings.html#warnings.warn"),
}


def main():
    for project, modules in PROJECTS.items():
        version = importlib.import_module(project).__version__
        write(HERE / f"{project}.inv", project, version, entries(project, modules))
    write(HERE / "python.inv", "Python", "3", PYTHON)


if __name__ == "__main__":
    main()
