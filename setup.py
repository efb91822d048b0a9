"""Build script: compiles the hot modules with mypyc and the plain GET/SET read loop with
Cython (docs/ARCHITECTURE.md, "Compiled modules").

Everything else about the package is in pyproject.toml. ``pip install [-e] .`` compiles
``COMPILED_MODULES`` (mypyc) and ``CYTHON_MODULES`` into C extensions when a C compiler and
the Python headers exist; with neither, or with ``SYNAP_PURE_PYTHON=1`` in the environment,
it installs pure Python (the Cython modules are optional: the code that imports them falls
back to Python without them). A compile *error* with a compiler present fails the install
(it never falls back silently).

Every build writes ``synap/_build.json``: the mode and the SHA-256 of each compiled
module's source at build time, which ``synap.build`` compares with the sources at start-up
to refuse stale extensions. ``python setup.py --compiled-sources`` prints the compiled
sources (the Makefile rebuilds when one changes).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sys
import sysconfig
from pathlib import Path

# The modules compiled with mypyc: the RESP loop, the command layer, the keyspace, the
# effect records, the replication history and the role and latency checks every command
# makes. Drop a line to ship that module as Python.
COMPILED_MODULES = (
    "synap/api/resp.py",
    "synap/api/resp_reader.py",
    "synap/api/resp_framing.py",
    "synap/api/resp_strings.py",
    "synap/api/resp_codec.py",
    "synap/api/resp_commands.py",
    "synap/commands/layer.py",
    "synap/store/keyspace.py",
    "synap/store/effects.py",
    "synap/store/history.py",
    "synap/replication/backlog.py",
    "synap/replication/roles.py",
    "synap/latency.py",
    # The HTTP front end: the server, its handlers and the route table.
    "synap/api/http_server.py",
    "synap/api/http.py",
    "synap/api/http_routes.py",
)
# Modules with a C twin written by hand (``<name>.c`` beside ``<name>.py``), built into an
# extension of the same name in the compiled build; the ``.py`` is the pure fallback.
C_TWINS = (
    "synap/persistence/walcodec.py",
    # pymalloc arenas on transparent huge pages (fork() of a big master; synap/hugepages.py)
    "synap/hugearena.py",
    # 8-byte size classes for 129-504-byte objects (values; synap/sizeclasses.py)
    "synap/tightalloc.py",
    # a full sync's snapshot chunks, encoded without touching a value's reference count
    # (the forked child's values may be in shared memory; synap/replication/fork_snapshot.py)
    "synap/replication/snapcodec.py",
    # prefetch the keyspace slots of a batch of keys (a replica's catch-up; synap/store/effects.py)
    "synap/store/dictprefetch.py",
)
# Written for Cython (no .py source; synap/api/resp.py runs without it): the RESP
# per-command loop for reads of plain GETs and SETs.
CYTHON_MODULES = ("synap/api/resp_plain.pyx",)
GROUP = "synap"  # mypyc's shared library: synap__mypyc.<abi>.so beside the package
ROOT = Path(__file__).resolve().parent
RECORD = "synap/_build.json"

if __name__ == "__main__" and sys.argv[1:] == ["--compiled-sources"]:
    c_sources = [p.removesuffix(".py") + ".c" for p in C_TWINS]
    print(" ".join([*COMPILED_MODULES, *CYTHON_MODULES, *C_TWINS, *c_sources]))
    sys.exit(0)

from setuptools import Extension, setup  # noqa: E402
from setuptools.command.build_ext import build_ext  # noqa: E402


def module_name(path: str) -> str:
    return path.removesuffix(".py").removesuffix(".pyx").replace("/", ".")


def source_digest(path: Path) -> str:
    """SHA-256 of a compiled module's source: the ``.py``, and its C twin if it has one
    (synap/build.py computes the same; the ``.c`` cythonize writes beside a ``.pyx`` is
    generated, not a source)."""
    digest = hashlib.sha256(path.read_bytes())
    twin = path.with_suffix(".c")
    if path.suffix == ".py" and twin.exists():
        digest.update(twin.read_bytes())
    return digest.hexdigest()


def record(mode: str, modules: tuple[str, ...]) -> str:
    data = {
        "mode": mode,
        "modules": {module_name(p): source_digest(ROOT / p) for p in modules},
    }
    return json.dumps(data, indent=1, sort_keys=True) + "\n"


def no_compiler() -> str | None:
    """Why nothing can be compiled here, or None when a C compiler and Python.h exist."""
    cc = (os.environ.get("CC") or sysconfig.get_config_var("CC") or "cc").split()[0]
    if shutil.which(cc) is None:
        return f"no C compiler ({cc})"
    if not (Path(sysconfig.get_paths()["include"]) / "Python.h").exists():
        return "no Python headers (Python.h)"
    return None


def remove_extensions() -> None:
    """Delete compiled leftovers in the source tree (an earlier editable compiled build), so a
    pure build never imports them."""
    suffix = sysconfig.get_config_var("EXT_SUFFIX") or ".so"
    for path in (*COMPILED_MODULES, *CYTHON_MODULES, *C_TWINS):
        (ROOT / path).with_suffix(suffix).unlink(missing_ok=True)
    for path in CYTHON_MODULES:  # the C file cythonize writes beside the source
        (ROOT / path).with_suffix(".c").unlink(missing_ok=True)
    for lib in ROOT.glob(f"{GROUP}__mypyc*"):
        lib.unlink()


class BuildExtRecording(build_ext):
    """build_ext that writes synap/_build.json once the extensions are built (in the source
    tree for editable installs, in the build directory otherwise)."""

    def run(self) -> None:
        super().run()
        target = ROOT if self.inplace else Path(self.build_lib)
        (target / RECORD).parent.mkdir(parents=True, exist_ok=True)
        (target / RECORD).write_text(record("mypyc", COMPILED_MODULES + CYTHON_MODULES + C_TWINS))


def extensions() -> list:
    why = (
        "SYNAP_PURE_PYTHON is set"
        if os.environ.get("SYNAP_PURE_PYTHON", "") not in ("", "0")
        else no_compiler()
    )
    if why is not None:
        print(f"synap: {why}: installing the pure-Python build", file=sys.stderr)
        remove_extensions()
        (ROOT / RECORD).write_text(record("pure", ()))
        return []
    try:
        from mypyc.build import mypycify
    except ImportError:
        sys.exit(
            "synap: mypyc (from mypy) is needed to compile the hot modules; install mypy, "
            "or set SYNAP_PURE_PYTHON=1 for the pure-Python build"
        )
    os.chdir(ROOT)  # mypyc takes paths relative to the project
    # No mypy config file: pyproject's [tool.mypy] loads the pydantic plugin, which the
    # isolated build environment does not have. Type errors in the modules they import are
    # `make typecheck`'s business (follow-imports=silent); the compiled ones must be clean.
    flags = ["--config-file=", "--ignore-missing-imports", "--follow-imports=silent"]
    modules = mypycify(
        [*flags, *COMPILED_MODULES],
        opt_level="3",
        group_name=GROUP,
    )
    try:
        from Cython.Build import cythonize
    except ImportError:
        sys.exit(
            "synap: Cython is needed to compile the RESP read loop; install Cython, "
            "or set SYNAP_PURE_PYTHON=1 for the pure-Python build"
        )
    twins = [
        Extension(module_name(p), [p.removesuffix(".py") + ".c"], extra_compile_args=["-O3"])
        for p in C_TWINS
    ]
    return [*modules, *cythonize(list(CYTHON_MODULES), quiet=True), *twins]


# Only the commands that build compile: setuptools also runs this file for metadata
# (egg_info, the build requirements), which need no extensions and would pay mypyc's time.
BUILDS = {"build", "build_ext", "bdist_wheel", "editable_wheel", "install", "develop", "bdist_egg"}
building = bool(BUILDS & set(sys.argv[1:]))
setup(
    ext_modules=extensions() if building else [],
    cmdclass={"build_ext": BuildExtRecording},
)
