"""synap.build: which build runs and when compiled extensions are stale (a fake package tree:
sources, extension files and the record setup.py writes)."""

from __future__ import annotations

import hashlib
import importlib.machinery
import json
from pathlib import Path

import pytest

from synap import build

EXT = importlib.machinery.EXTENSION_SUFFIXES[0]  # e.g. .cpython-311-x86_64-linux-gnu.so


def make_tree(tmp_path: Path, modules: dict[str, str], mode: str = "mypyc") -> Path:
    """<tmp>/synap with each module's source and extension, and a record of the sources."""
    pkg = tmp_path / "synap"
    recorded = {}
    for module, text in modules.items():
        src = pkg.joinpath(*module.split(".")[1:]).with_suffix(".py")
        src.parent.mkdir(parents=True, exist_ok=True)
        src.write_text(text)
        src.with_name(src.stem + EXT).write_bytes(b"\x7fELF not really")
        recorded[module] = hashlib.sha256(text.encode()).hexdigest()
    (pkg / "_build.json").write_text(json.dumps({"mode": mode, "modules": recorded}))
    return pkg


@pytest.fixture(autouse=True)
def _no_pure_override(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(build.PURE_ENV, raising=False)


def test_a_fresh_compiled_build_is_compiled_and_not_stale(tmp_path: Path) -> None:
    pkg = make_tree(tmp_path, {"synap.api.fake_resp": "x = 1\n", "synap.store.fake_ks": "y = 2\n"})
    state = build.state(pkg)
    assert state.compiled == ("synap.api.fake_resp", "synap.store.fake_ks")
    assert state.stale == ()
    assert state.describe() == "compiled (mypyc, 2 modules)"


def test_an_edited_source_makes_its_extension_stale(tmp_path: Path) -> None:
    pkg = make_tree(tmp_path, {"synap.api.fake_resp": "x = 1\n", "synap.store.fake_ks": "y = 2\n"})
    (pkg / "store" / "fake_ks.py").write_text("y = 3\n")
    state = build.state(pkg)
    assert state.stale == ("synap.store.fake_ks",)
    assert "STALE: synap.store.fake_ks" in state.describe()
    message = build.stale_message(state.stale)
    assert "synap/store/fake_ks.py" in message and "make install" in message


def test_an_extension_the_record_does_not_know_is_stale(tmp_path: Path) -> None:
    """A pure build over the leftovers of a compiled one, or a module dropped from the list."""
    pkg = make_tree(tmp_path, {"synap.api.fake_resp": "x = 1\n"})
    (pkg / "_build.json").write_text(json.dumps({"mode": "pure", "modules": {}}))
    assert build.state(pkg).stale == ("synap.api.fake_resp",)
    (pkg / "_build.json").unlink()  # no record at all
    assert build.state(pkg).stale == ("synap.api.fake_resp",)


def test_no_extensions_is_pure_python(tmp_path: Path) -> None:
    pkg = make_tree(tmp_path, {"synap.api.fake_resp": "x = 1\n"}, mode="pure")
    (pkg / "api" / f"fake_resp{EXT}").unlink()
    state = build.state(pkg)
    assert (state.compiled, state.stale) == ((), ())
    assert state.describe() == "pure Python"


def test_the_run_time_override_reports_pure_python(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pkg = make_tree(tmp_path, {"synap.api.fake_resp": "x = 1\n"})
    (pkg / "api" / "fake_resp.py").write_text("x = 2\n")  # stale, but not what runs
    monkeypatch.setenv(build.PURE_ENV, "1")
    state = build.state(pkg)
    assert (state.compiled, state.stale, state.forced_pure) == ((), (), True)
    assert state.describe() == "pure Python (SYNAP_PURE_PYTHON=1)"


def test_a_cython_module_is_recorded_checked_and_named(tmp_path: Path) -> None:
    """A module written for Cython has a .pyx source and no .py: it counts apart from
    the mypyc ones, and an edit to its .pyx makes it stale."""
    pkg = make_tree(tmp_path, {"synap.api.fake_resp": "x = 1\n"})
    pyx = pkg / "api" / "fake_loop.pyx"
    pyx.write_text("def run(): pass\n")
    pyx.with_name("fake_loop" + EXT).write_bytes(b"\x7fELF not really")
    record = json.loads((pkg / "_build.json").read_text())
    record["modules"]["synap.api.fake_loop"] = hashlib.sha256(pyx.read_bytes()).hexdigest()
    (pkg / "_build.json").write_text(json.dumps(record))
    state = build.state(pkg)
    assert state.compiled == ("synap.api.fake_loop", "synap.api.fake_resp")
    assert state.cython == ("synap.api.fake_loop",)
    assert state.stale == ()
    assert state.describe() == "compiled (mypyc, 1 modules; Cython: fake_loop)"
    pyx.write_text("def run(): return 1\n")
    assert build.state(pkg).stale == ("synap.api.fake_loop",)


def test_a_c_twin_is_named_apart_and_its_c_file_is_checked(tmp_path: Path) -> None:
    """A module with a hand-written .c beside its .py (setup.py C_TWINS) counts apart from
    the mypyc ones, and an edit to either file makes it stale."""
    pkg = make_tree(
        tmp_path, {"synap.api.fake_resp": "x = 1\n", "synap.store.fake_codec": "y = 2\n"}
    )
    twin = pkg / "store" / "fake_codec.c"
    twin.write_text("/* C */\n")
    digest = hashlib.sha256(b"y = 2\n" + twin.read_bytes()).hexdigest()
    record = json.loads((pkg / "_build.json").read_text())
    record["modules"]["synap.store.fake_codec"] = digest
    (pkg / "_build.json").write_text(json.dumps(record))
    state = build.state(pkg)
    assert state.stale == ()
    assert state.c_twins == ("synap.store.fake_codec",)
    assert state.describe() == "compiled (mypyc, 1 modules; C: fake_codec)"
    twin.write_text("/* C, edited */\n")
    assert build.state(pkg).stale == ("synap.store.fake_codec",)
