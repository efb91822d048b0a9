"""The real Redis tools against a node: redis-cli (replies, --no-raw formatting, INFO
replication) and a short redis-benchmark run (a smoke test, not a measurement)."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from tests.support.fixtures import module_node
from tests.support.server import NodeFactory, SynapProcess

REDIS_CLI = shutil.which("redis-cli")
REDIS_BENCHMARK = shutil.which("redis-benchmark")


node = module_node("tools")


def cli(node: SynapProcess, *args: str, stdin: str | None = None) -> str:
    if REDIS_CLI is None:
        pytest.skip("redis-cli is not installed (Debian: apt-get install redis-tools)")
    done = subprocess.run(
        [REDIS_CLI, "-h", "127.0.0.1", "-p", str(node.resp_port), *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_redis_cli_commands_and_replies(node: SynapProcess) -> None:
    assert cli(node, "ping") == "PONG\n"
    assert cli(node, "set", "cli:greeting", "hello world") == "OK\n"
    assert cli(node, "get", "cli:greeting") == "hello world\n"
    assert cli(node, "incr", "cli:counter") == "1\n"
    assert cli(node, "incrby", "cli:counter", "41") == "42\n"
    assert cli(node, "mget", "cli:greeting", "cli:missing") == "hello world\n\n"
    assert cli(node, "dbsize").strip().isdigit()


def test_redis_cli_no_raw_formatting(node: SynapProcess) -> None:
    cli(node, "set", "cli:q", "v")
    assert cli(node, "--no-raw", "get", "cli:q") == '"v"\n'
    assert cli(node, "--no-raw", "get", "cli:nothing") == "(nil)\n"
    assert cli(node, "--no-raw", "incr", "cli:n") == "(integer) 1\n"
    assert cli(node, "--no-raw", "mget", "cli:q", "cli:nothing") == '1) "v"\n2) (nil)\n'
    assert cli(node, "--no-raw", "incr", "cli:q") == (
        "(error) ERR value is not an integer or out of range\n"
    )
    assert cli(node, "--no-raw", "nosuchcommand").startswith("(error) ERR unknown command")
    assert cli(node, "--no-raw", "keys", "cli:q") == '1) "cli:q"\n'


def test_redis_cli_info_replication(node: SynapProcess) -> None:
    text = cli(node, "info", "replication")
    assert text.startswith("# Replication")
    fields = dict(line.split(":", 1) for line in text.splitlines()[1:] if ":" in line)
    assert fields["role"] == "master"
    assert fields["connected_slaves"] == "0"
    assert len(fields["master_replid"]) == 40
    assert fields["master_repl_offset"].isdigit()


def test_redis_cli_reads_commands_from_stdin(node: SynapProcess) -> None:
    out = cli(node, stdin="set cli:stdin 1\nincr cli:stdin\nget cli:stdin\n")
    assert out == "OK\n2\n2\n"


def test_redis_cli_hello_3(node: SynapProcess) -> None:
    out = cli(node, "-3", "--no-raw", "get", "cli:nothing")
    assert out == "(nil)\n"


def test_redis_benchmark_smoke(node: SynapProcess) -> None:
    if REDIS_BENCHMARK is None:
        pytest.skip("redis-benchmark is not installed (Debian: apt-get install redis-tools)")
    done = subprocess.run(
        [REDIS_BENCHMARK, "-h", "127.0.0.1", "-p", str(node.resp_port)]
        + ["-n", "2000", "-q", "-t", "set,get", "-P", "4"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    # -q prints one final line per test ("SET: 12345.67 requests per second, ...")
    lines = [line.rsplit("\r", 1)[-1] for line in done.stdout.splitlines()]
    summary = [line for line in lines if "requests per second" in line]
    assert [line.split(":")[0].strip() for line in summary] == ["SET", "GET"], done.stdout
    assert "error" not in done.stdout.lower() + done.stderr.lower()
    assert int(cli(node, "dbsize")) >= 1  # redis-benchmark's key:__rand_int__


def test_client_help_lists_the_subcommands(node: SynapProcess) -> None:
    lines = [
        line.decode() if isinstance(line, bytes) else line
        for line in node.redis().execute_command("CLIENT", "HELP")
    ]
    assert lines[0].startswith("CLIENT <subcommand>")
    for sub in ("GETNAME", "SETNAME <name>", "ID", "INFO", "LIST", "HELP"):
        assert sub in lines, (sub, lines)
    out = cli(node, "client", "help")
    assert "Print this help." in out and "ERR" not in out


def test_redis_cli_stat_shows_sane_numbers(node: SynapProcess) -> None:
    if REDIS_CLI is None or shutil.which("stdbuf") is None:
        pytest.skip("needs redis-cli and stdbuf")
    client = node.redis()
    client.mset({f"stat:{i}": "x" * 100 for i in range(50)})
    keys = client.dbsize()
    # --stat prints one line per interval; stdbuf makes it line-buffered on a pipe, and
    # timeout stops it (exit 124) after a few samples.
    done = subprocess.run(
        ["timeout", "2.5", "stdbuf", "-oL", REDIS_CLI, "-h", "127.0.0.1",
         "-p", str(node.resp_port), "--stat", "-i", "0.5"],
        capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    lines = done.stdout.splitlines()
    assert len(lines) >= 4, done.stdout + done.stderr
    assert lines[1].split() == ["keys", "mem", "clients", "blocked", "requests", "connections"]
    assert "-9223372036854775808" not in done.stdout, done.stdout
    samples = []
    for line in lines[2:]:
        # "50   7.23K   1   0   123 (+1)   7"
        k, mem, clients, blocked, requests, delta, connections = line.split()
        samples.append((int(k), mem, int(clients), int(blocked), int(requests), delta))
        assert int(k) == keys, line
        assert mem != "0B" and mem[0].isdigit(), line
        assert int(clients) >= 1 and int(blocked) == 0, line
        assert int(connections) >= 1, line
    # Every sample is an INFO command, counted in total_commands_processed.
    assert samples[-1][4] > samples[0][4], samples
    assert all(s[5] != "(+0)" for s in samples[1:]), samples


def test_info_blocked_clients_counts_a_client_in_wait(node_factory: NodeFactory) -> None:
    import threading

    from tests.support.server import wait_for

    master = node_factory.master()  # no replica: WAIT 1 blocks until its timeout
    master.redis().set("k", "v")
    waiter = master.redis()
    result: list[object] = []
    thread = threading.Thread(target=lambda: result.append(waiter.execute_command("WAIT", 1, 2000)))
    thread.start()
    try:
        wait_for(lambda: master.redis().info("clients")["blocked_clients"] == 1, 5)
    finally:
        thread.join(10)
    assert result == [0]
    assert master.redis().info("clients")["blocked_clients"] == 0
