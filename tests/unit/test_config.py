"""Configuration: defaults, the file + flag overrides, and validation messages that name
the offending key and value (the CLI prints them; see integration/test_config_cli.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from synap.config import Config, ConfigError, build_config, load_config, parse_address
from synap.server_cli import main

EXAMPLE = Path(__file__).resolve().parents[2] / "config.yml"


def error_for(raw: dict[str, Any]) -> str:
    with pytest.raises(ConfigError) as info:
        build_config(raw)
    return str(info.value)


def test_defaults() -> None:
    config = Config()
    assert (config.server.host, config.server.port, config.server.resp_port) == (
        "127.0.0.1",
        5500,
        6379,
    )
    assert config.server.max_body_bytes == 64 * 1024 * 1024
    assert config.kv_store.max_memory_mb == 0 and config.kv_store.eviction_policy == "none"
    assert config.kv_store.max_value_bytes == 512 * 1024 * 1024
    assert config.kv_store.allow_flush_commands is False
    assert config.persistence.enabled is False and config.persistence.fsync_mode == "periodic"
    repl = config.replication
    assert (repl.enabled, repl.role, repl.master_address) == (False, "standalone", None)
    assert repl.replica_listen_address == "0.0.0.0:15501"
    assert (repl.heartbeat_interval_ms, repl.max_lag_ms, repl.buffer_size_kb) == (1000, 10000, 256)
    assert (repl.auto_reconnect, repl.reconnect_delay_ms, repl.replica_timeout_secs) == (
        True,
        5000,
        30,
    )


def test_example_config_yml_loads() -> None:
    config = load_config(EXAMPLE)
    assert config.replication.enabled and config.replication.role == "master"
    assert config.replication.master_address == "127.0.0.1:15501"


def test_overrides_win_over_the_file(tmp_path: Path) -> None:
    path = tmp_path / "c.yml"
    path.write_text("server:\n  port: 7000\n  resp_port: 7001\nkv_store:\n  max_memory_mb: 5\n")
    config = load_config(path, {"server": {"port": 8000}})
    assert config.server.port == 8000
    assert config.server.resp_port == 7001
    assert config.kv_store.max_memory_mb == 5


def test_a_role_turns_replication_on() -> None:
    config = load_config(None, {"replication": {"role": "master"}})
    assert config.replication.enabled is True
    config = load_config(None, {"replication": {"role": "master", "enabled": False}})
    assert config.replication.enabled is False  # an explicit value stays


def test_empty_config_file_is_all_defaults(tmp_path: Path) -> None:
    path = tmp_path / "empty.yml"
    path.write_text("")
    assert load_config(path) == Config()


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (
            {"replication": {"role": "replica"}},
            "replication.master_address is required when replication.role is 'replica'",
        ),
        (
            {"replication": {"role": "boss"}},
            "replication.role: Input should be 'master', 'replica' or 'standalone' (got 'boss')",
        ),
        (
            {"replication": {"master_address": "nohost"}},
            "replication.master_address: 'nohost' is not an IP:port address "
            "(example: 127.0.0.1:15501)",
        ),
        (
            {"replication": {"replica_listen_address": "0.0.0.0:0"}},
            "replication.replica_listen_address: port 0 in '0.0.0.0:0' is out of range 1-65535",
        ),
        ({"server": {"prot": 1}}, "server.prot: unknown configuration key (known here: host, port"),
        ({"servers": {}}, "servers: unknown configuration key (known here: server, kv_store"),
        ({"server": {"port": 70000}}, "server.port: Input should be less than or equal to 65535"),
        ({"server": {"port": "http"}}, "(got 'http')"),
        ({"kv_store": {"eviction_policy": "random"}}, "kv_store.eviction_policy"),
        ({"kv_store": {"max_memory_mb": -5}}, "kv_store.max_memory_mb"),
        ({"persistence": {"fsync_mode": "sometimes"}}, "(got 'sometimes')"),
        ({"replication": {"auto_reconnect": "maybe"}}, "replication.auto_reconnect"),
        ({"logging": {"format": "xml"}}, "logging.format"),
        ({"server": []}, "server: Input should be a valid dictionary"),
    ],
)
def test_errors_name_the_key_and_the_value(raw: dict[str, Any], expected: str) -> None:
    message = error_for(raw)
    assert expected in message
    key = message.split(":", 1)[0].split(" ", 1)[0]
    assert message.count(key) == 1, message  # named once, not "key: key: ..."


def test_several_errors_are_all_reported() -> None:
    message = error_for({"server": {"port": -1, "resp_port": "x"}})
    assert "server.port" in message and "server.resp_port" in message


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("127.0.0.1:15501", ("127.0.0.1", 15501)),
        ("0.0.0.0:1", ("0.0.0.0", 1)),
        ("[::1]:6379", ("::1", 6379)),
        ("localhost:80", ("localhost", 80)),
        ("db-1.internal:15501", ("db-1.internal", 15501)),
    ],
)
def test_parse_address(text: str, expected: tuple[str, int]) -> None:
    assert parse_address(text, key="k") == expected


@pytest.mark.parametrize("text", ["nohost", "1.2.3.4", ":80", "1.2.3.4:", "a:b", "1.2.3.4:70000"])
def test_parse_address_refuses(text: str) -> None:
    with pytest.raises(ConfigError, match="^k: "):
        parse_address(text, key="k")


def test_yaml_problems(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yml"
    bad.write_text("server: [unclosed")
    with pytest.raises(ConfigError, match="is not valid YAML"):
        load_config(bad)
    bad.write_text("- a list\n")
    with pytest.raises(ConfigError, match="must hold a mapping of sections"):
        load_config(bad)
    bad.write_text("server: 5\n")
    with pytest.raises(ConfigError, match="server: must be a mapping"):
        load_config(bad, {"server": {"port": 1}})
    with pytest.raises(ConfigError, match="cannot read config file"):
        load_config(tmp_path / "missing.yml")


# ----------------------------------------------------------------- the CLI, in-process


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--role", "replica"], "replication.master_address is required"),
        (["--master-address", "1.2.3.4"], "'1.2.3.4' is not an IP:port address"),
        (["--replica-listen", "0.0.0.0"], "replication.replica_listen_address"),
        (["--port", "70000"], "70000 is not in the range 0<=x<=65535"),
        (["--resp-port", "-1"], "-1 is not in the range 0<=x<=65535"),
        (["--auto-reconnect", "perhaps"], "--auto-reconnect: 'perhaps' is not true or false"),
        (["--log-level", "loud"], "'loud' is not one of"),
    ],
)
def test_cli_refuses_bad_flags_with_exit_code_2(args: list[str], expected: str) -> None:
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 2
    assert expected in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)


@pytest.mark.parametrize("value", ["true", "TRUE", "yes", "1", "on", "false", "no", "0", "off"])
def test_auto_reconnect_accepts_the_usual_booleans(value: str) -> None:
    # Validation stops at the missing master, after --auto-reconnect was accepted.
    result = CliRunner().invoke(main, ["--role", "replica", "--auto-reconnect", value])
    assert result.exit_code == 2
    assert "master_address is required" in result.output


def test_consistency_keys_defaults_and_validation() -> None:
    from synap.config import ConfigError, build_config

    repl = build_config({}).replication
    assert (repl.min_replicas_to_write, repl.min_replicas_max_lag_secs) == (0, 10)
    assert repl.group_size is None and repl.serve_stale_reads is True
    assert repl.default_wait.replicas == 0 and repl.default_wait.fsync is False
    ok = build_config({"replication": {"group_size": 3, "default_wait": {"replicas": "majority"}}})
    assert ok.replication.default_wait.replicas == "majority"
    for bad in (
        {"default_wait": {"replicas": "majority"}},  # no group size
        {"default_wait": {"replicas": -1}},
        {"default_wait": {"replicas": "most"}},
        {"default_wait": {"timeout_ms": 0}},
        {"min_replicas_to_write": -1},
        {"group_size": 0},
    ):
        with pytest.raises(ConfigError):
            build_config({"replication": bad})
