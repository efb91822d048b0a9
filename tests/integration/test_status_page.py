"""The status page: ``GET /`` redirects to ``/ui``, a self-contained page (nothing
loaded from elsewhere) that polls ``/ui/status``; API keys are respected. Driven in
headless Chromium (Debian's ``chromium``, ``--dump-dom`` after the page ran its script):
a 3-node group shows all three nodes and their roles, and a frozen replica shows as
unreachable."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.support.server import NodeFactory, SynapProcess, wait_caught_up, wait_for

KEY = "status-page-key-0123456789"


def roles(status: dict[str, Any]) -> list[str]:
    return sorted(str((n["stats"] or {}).get("role")) for n in status["nodes"])


def test_root_redirects_to_a_self_contained_page(node_factory: NodeFactory) -> None:
    master = node_factory.master()
    response = master.http.get("/", follow_redirects=False)
    assert response.status_code == 302 and response.headers["location"] == "/ui"
    page = master.http.get("/ui")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert "default-src 'none'" in page.headers["content-security-policy"]
    html = page.text
    assert "<script>" in html and "/ui/status" in html
    assert not re.search(r"""(src|href)\s*=|https?://(?!www\.w3\.org/2000/svg)|@import""", html)


def test_status_json_shows_the_group_with_chains(node_factory: NodeFactory) -> None:
    master = node_factory.master()
    r1 = node_factory.replica(master)
    r2 = node_factory.replica(master, replica_listen=True)
    r3 = node_factory.replica(r2)
    master.redis().set("k", "v")
    wait_caught_up(master, [r1, r2])
    wait_for(lambda: r3.stats()["replica_offset"] == 1, 15)
    status = wait_for(
        lambda: s if len((s := master.http.get("/ui/status").json())["nodes"]) == 4 else None, 15
    )
    assert roles(status) == ["master", "replica", "replica", "replica"]
    by_address = {n["address"]: n for n in status["nodes"]}
    ids = {n.name: n.stats()["replica_id"] for n in (master, r1, r2, r3)}
    assert by_address[f"127.0.0.1:{r3.port}"]["parent"] == ids["replica2"]
    assert by_address[f"127.0.0.1:{r1.port}"]["parent"] == ids["master1"]
    assert status["master"] == ids["master1"]
    for n in status["nodes"]:
        assert n["stats"]["offset"] == 1 and n["reachable"] is True

    r1.freeze()
    try:
        status = master.http.get("/ui/status").json()
        frozen = by_address_of(status, r1)
        assert frozen["reachable"] is False and "unreachable" in frozen["error"]
    finally:
        r1.thaw()


def by_address_of(status: dict[str, Any], node: SynapProcess) -> dict[str, Any]:
    (entry,) = [n for n in status["nodes"] if n["address"] == f"127.0.0.1:{node.port}"]
    return entry


def test_status_needs_the_api_key_when_keys_are_set(node_factory: NodeFactory) -> None:
    node = node_factory.master(config={"server": {"api_keys": [KEY]}})
    assert node.http.get("/ui").status_code == 200  # the page holds no data
    assert node.http.get("/ui/status").status_code == 401
    ok = node.http.get("/ui/status", headers={"Authorization": f"Bearer {KEY}"})
    assert ok.status_code == 200 and roles(ok.json()) == ["master"]


# --------------------------------------------------------------------------- browser


def chromium() -> str:
    for name in ("chromium", "chromium-browser"):
        if path := shutil.which(name):
            return path
    pytest.skip("needs Debian's chromium (apt-get install chromium); .ci/run installs it")


def dump_dom(url: str, profile: Path, budget_ms: int = 4000) -> str:
    """The page's DOM after its script ran for ``budget_ms`` of virtual time."""
    result = subprocess.run(
        [
            chromium(),
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-extensions",
            "--no-first-run",
            f"--user-data-dir={profile}",
            f"--virtual-time-budget={budget_ms}",
            "--dump-dom",
            url,
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    return result.stdout


def rows(dom: str) -> dict[str, tuple[str, str]]:
    """node id -> (role, link) of each table row the page drew."""
    out = {}
    for m in re.finditer(r'<tr data-node="([^"]+)" data-link="([^"]+)">(.*?)</tr>', dom, re.S):
        role = re.search(r'<td class="role">([^<]*)</td>', m.group(3))
        out[m.group(1)] = (role.group(1) if role else "?", m.group(2))
    return out


def test_browser_shows_the_group_and_a_frozen_replica(node_factory: NodeFactory) -> None:
    chromium()
    master = node_factory.master()
    replicas = [node_factory.replica(master), node_factory.replica(master)]
    master.redis().set("k", "v")
    wait_caught_up(master, replicas)
    ids = {n.name: n.stats()["replica_id"] for n in (master, *replicas)}

    dom = dump_dom(f"{master.http_url}/", node_factory.base_dir / "chrome")
    seen = rows(dom)
    assert seen == {
        ids["master1"]: ("master", "master"),
        ids["replica1"]: ("replica", "connected"),
        ids["replica2"]: ("replica", "connected"),
    }, dom[-3000:]
    assert dom.count('data-role="replica"') == 2 and dom.count('data-role="master"') == 1
    assert "3 node(s); master: 127.0.0.1:" in dom

    replicas[0].freeze()
    try:
        seen = rows(dump_dom(f"{master.http_url}/ui", node_factory.base_dir / "chrome"))
        assert seen[ids["replica1"]][1] == "unreachable"
        assert seen[ids["replica2"]] == ("replica", "connected")
    finally:
        replicas[0].thaw()


def test_browser_without_a_key_sees_only_the_health(node_factory: NodeFactory) -> None:
    chromium()
    node = node_factory.master(config={"server": {"api_keys": [KEY]}})
    dom = dump_dom(f"{node.http_url}/ui", node_factory.base_dir / "chrome")
    assert "health: healthy, role: master (send an API key" in dom
    assert rows(dom) == {}
