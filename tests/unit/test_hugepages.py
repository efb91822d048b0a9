"""synap.hugepages: whether to put Python's object memory on transparent huge pages
(config key, environment override, the kernel's sysfs words, the build), and the address
space it reserves. Pure logic: no allocator is installed here (the integration tests in
tests/integration/test_huge_pages.py start real servers with it)."""

from __future__ import annotations

import pytest

from synap import hugepages
from synap.config import ConfigError, load_config

MADVISE = "always [madvise] never\n"
PMD = "2097152\n"


def test_the_selected_sysfs_word_is_the_mode() -> None:
    assert hugepages.thp_mode("always [madvise] never\n") == "madvise"
    assert hugepages.thp_mode("[always] madvise never") == "always"
    assert hugepages.thp_mode("always madvise [never]") == "never"
    assert hugepages.thp_mode(None) is None  # no such file: no THP in this kernel
    assert hugepages.thp_mode("always madvise never") is None  # nothing selected
    assert hugepages.thp_mode("") is None


@pytest.mark.parametrize("value", ["never", "0", "off", "no", "NEVER", " never "])
def test_the_environment_turns_it_off(value: str) -> None:
    assert hugepages.env_mode(value) == "never"
    got = hugepages.decide("auto", value, MADVISE, PMD, built=True)
    assert not got.install
    assert f"SYNAP_HUGE_PAGES is {value.strip()}" in got.reason


def test_the_environment_turns_on_what_the_config_turned_off() -> None:
    assert hugepages.decide("never", "auto", MADVISE, PMD, built=True).install
    assert hugepages.decide("never", "1", MADVISE, PMD, built=True).install


@pytest.mark.parametrize("value", [None, "", "maybe"])
def test_an_unset_or_unknown_environment_leaves_it_to_the_config(value: str | None) -> None:
    assert hugepages.env_mode(value) is None
    assert hugepages.decide("auto", value, MADVISE, PMD, built=True).install
    off = hugepages.decide("never", value, MADVISE, PMD, built=True)
    assert not off.install and off.reason == "turned off: kv_store.huge_pages is never"


@pytest.mark.parametrize("text", ["always [madvise] never", "[always] madvise never"])
def test_auto_installs_when_the_kernel_allows_it(text: str) -> None:
    got = hugepages.decide("auto", None, text, PMD, built=True)
    assert got.install
    assert hugepages.thp_mode(text) in got.reason


def test_auto_stays_off_when_the_kernel_says_never_or_has_no_thp() -> None:
    never = hugepages.decide("auto", None, "always madvise [never]", PMD, built=True)
    assert not never.install and "mode is never" in never.reason
    missing = hugepages.decide("auto", None, None, None, built=True)
    assert not missing.install and "no transparent huge pages" in missing.reason
    # "auto" in the environment cannot force what the kernel refuses
    assert not hugepages.decide("never", "auto", "always madvise [never]", PMD, True).install


def test_a_pure_python_build_stays_off_and_says_why() -> None:
    got = hugepages.decide("auto", None, MADVISE, PMD, built=False)
    assert not got.install and "not built" in got.reason


def test_only_2_mib_huge_pages_are_used() -> None:
    got = hugepages.decide("auto", None, MADVISE, "536870912\n", built=True)  # arm64 64K
    assert not got.install and "536870912" in got.reason
    # a kernel without hpage_pmd_size (older ones): 2 MiB assumed
    assert hugepages.decide("auto", None, MADVISE, None, built=True).install


def test_the_status_words() -> None:
    assert hugepages.Status(True, "transparent_hugepage mode madvise").describe() == "active"
    off = hugepages.Status(False, "the system's transparent_hugepage mode is never")
    assert off.describe() == "off (the system's transparent_hugepage mode is never)"
    # INFO's format: no comma or '=' in the value (redis-py would read it as a dict)
    for env in (None, "never", "0"):
        reason = hugepages.decide("never", env, MADVISE, PMD, built=True).reason
        assert "," not in reason and "=" not in reason


def test_the_reserve_is_the_ram_in_whole_huge_pages_and_at_least_1_gib() -> None:
    ram = {"SC_PHYS_PAGES": 1_000_001, "SC_PAGE_SIZE": 4096}  # ~3.8 GiB, not 2 MiB aligned
    size = hugepages.reserve_bytes(ram)
    assert size % hugepages.HUGE_PAGE == 0
    assert 0 <= size - 1_000_001 * 4096 < hugepages.HUGE_PAGE
    assert hugepages.reserve_bytes({"SC_PHYS_PAGES": 10, "SC_PAGE_SIZE": 4096}) == 1024**3
    assert hugepages.reserve_bytes({}) == 1024**3


def test_the_config_key_and_its_default() -> None:
    assert load_config(None).kv_store.huge_pages == "never"  # opt-in, like Redis's disable-thp
    assert load_config(None, {"kv_store": {"huge_pages": "auto"}}).kv_store.huge_pages == "auto"
    assert load_config(None, {"kv_store": {"huge_pages": "never"}}).kv_store.huge_pages == "never"
    with pytest.raises(ConfigError, match="kv_store.huge_pages"):
        load_config(None, {"kv_store": {"huge_pages": "always"}})
