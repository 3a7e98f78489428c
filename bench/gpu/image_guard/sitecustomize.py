"""The GPU machine's Python packages, enforced on another machine (``bench/gpu/run.sh``'s dry run).

With this folder on ``PYTHONPATH`` and ``COSIM_GPU_IMAGE_GUARD`` naming a file of distribution
names (one a line, ``#`` comments), importing a module of an installed distribution that the file
does not name fails with ``ModuleNotFoundError``, as it would on a machine without it. The
standard library, and modules of no distribution (cosim from its source tree, the benchmarks,
the tests), are never refused; nor are the requirements of the named distributions as installed
here (the image holds its packages' own requirements). ``COSIM_GPU_IMAGE_LOG``, if set, names a
file that each process appends the distributions it imported to at exit (``trace`` as the guard
file refuses nothing and only logs).
"""

from __future__ import annotations

import atexit
import os
import re
import sys


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _requirements(names: set[str]) -> set[str]:
    """What the named distributions installed here require, transitively: the image holds its
    packages' own requirements, whatever their versions here need."""
    import importlib.metadata

    found: set[str] = set()
    todo = list(names)
    while todo:
        try:
            requires = importlib.metadata.requires(todo.pop()) or []
        except importlib.metadata.PackageNotFoundError:
            continue
        for req in requires:
            if "extra ==" in req:
                continue
            name = _norm(re.split(r"[\s<>=!~;\[(]", req.strip(), maxsplit=1)[0])
            if name not in found and name not in names:
                found.add(name)
                todo.append(name)
    return found


def _install() -> None:
    guard = os.environ.get("COSIM_GPU_IMAGE_GUARD")
    if not guard:
        return
    import importlib.abc
    import importlib.metadata

    allowed: set[str] | None = None
    if guard != "trace":
        with open(guard, encoding="utf-8") as f:
            allowed = {_norm(line.split("#")[0].strip()) for line in f if line.split("#")[0].strip()}
        allowed |= _requirements(allowed)
    owners = {top: {_norm(d) for d in dists}
              for top, dists in importlib.metadata.packages_distributions().items()}
    used: set[str] = set()

    class Guard(importlib.abc.MetaPathFinder):
        def find_spec(self, fullname, path=None, target=None):
            top = fullname.partition(".")[0]
            if top in sys.stdlib_module_names or top not in owners or top == "cosim":
                return None
            dists = owners[top]
            if allowed is not None and not dists & allowed:
                raise ModuleNotFoundError(
                    f"No module named {fullname!r} (its distribution {', '.join(sorted(dists))} is not "
                    f"on the GPU machine's image nor in the bundle: {guard})", name=fullname)
            used.update(dists if allowed is None else dists & allowed)
            return None

    sys.meta_path.insert(0, Guard())
    log = os.environ.get("COSIM_GPU_IMAGE_LOG")
    if log:
        def write() -> None:
            with open(log, "a", encoding="utf-8") as f:
                f.writelines(f"{d}\n" for d in sorted(used))
        atexit.register(write)


_install()
