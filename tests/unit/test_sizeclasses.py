"""synap.sizeclasses.decide: when the 8-byte size classes are installed, and the words
INFO memory ``synap_size_classes`` and the start-up line give when they are not."""

from __future__ import annotations

import pytest

from synap.sizeclasses import Status, decide


def test_fine_is_installed_when_built_and_nothing_else_watches_the_allocator() -> None:
    got = decide("fine", True, None, False, False)
    assert got == Status(True, "kv_store.size_classes is fine")
    assert got.describe() == "fine"
    assert decide("fine", True, "pymalloc", False, False).active
    # the environment wins over the file; anything else there is ignored
    assert decide("pymalloc", True, None, False, False, "fine") == Status(
        True, "SYNAP_SIZE_CLASSES is fine"
    )
    assert decide("fine", True, None, False, False, "bogus").active


@pytest.mark.parametrize(
    ("args", "reason"),
    [
        (("pymalloc", True, None, False, False), "kv_store.size_classes is pymalloc"),
        (
            ("fine", False, None, False, False),
            "the C module synap.tightalloc is not built (pure-Python build)",
        ),
        (("fine", True, "debug", False, False), "PYTHONMALLOC is debug"),
        (("fine", True, "malloc", False, False), "PYTHONMALLOC is malloc"),
        (("fine", True, None, True, False), "Python runs in development mode (-X dev)"),
        (("fine", True, None, False, True), "tracemalloc is tracing"),
        (("fine", True, None, False, False, "pymalloc"), "SYNAP_SIZE_CLASSES is pymalloc"),
        (("fine", True, None, False, False, " PyMalloc "), "SYNAP_SIZE_CLASSES is pymalloc"),
    ],
)
def test_otherwise_pymalloc_keeps_every_object_and_says_why(
    args: tuple[str, bool, str | None, bool, bool] | tuple[str, bool, None, bool, bool, str],
    reason: str,
) -> None:
    got = decide(*args)
    assert got == Status(False, reason)
    assert got.describe() == f"pymalloc ({reason})"
