"""Configuration: the YAML file's structure, its defaults, validation, and CLI overrides.

The ``replication:`` block carries the ten keys of the product spec with the spec's
defaults, plus the replication-log, security and buffer settings the spec leaves open.
Validation errors name the offending key and value, e.g.
``replication.master_address: 'nohost' is not an IP:port address``.
"""

from __future__ import annotations

import ipaddress
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator


class ConfigError(Exception):
    """The configuration cannot be used; the message says which key and why."""


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


def parse_address(value: str, *, key: str) -> tuple[str, int]:
    """Split ``IP:port`` (or ``host:port``, ``[v6]:port``) and check the port."""
    text = value.strip()
    host, sep, port_text = text.rpartition(":")
    if not sep or not host or not port_text.isdigit():
        raise ConfigError(f"{key}: {value!r} is not an IP:port address (example: 127.0.0.1:15501)")
    port = int(port_text)
    if not 0 < port < 65536:
        raise ConfigError(f"{key}: port {port} in {value!r} is out of range 1-65535")
    host = host.strip("[]")
    if host != "localhost":
        try:
            ipaddress.ip_address(host)
        except ValueError:
            if not all(part.isalnum() or "-" in part for part in host.split(".")):
                raise ConfigError(f"{key}: {value!r} is not an IP:port address") from None
    return host, port


class ServerConfig(_Section):
    host: str = "127.0.0.1"
    port: int = Field(5500, ge=0, le=65535)
    resp_port: int = Field(6379, ge=0, le=65535, description="Redis protocol; 0 = off")
    max_body_bytes: int = Field(64 * 1024 * 1024, gt=0)
    max_clients: int = Field(10000, gt=0)
    api_keys: list[str] = Field(default_factory=list)
    admin_key: str | None = None


class KVStoreConfig(_Section):
    max_memory_mb: int = Field(0, ge=0, description="0 = unlimited")
    eviction_policy: Literal["none", "lru", "lfu", "ttl"] = "none"
    max_key_bytes: int = Field(64 * 1024, gt=0)
    max_value_bytes: int = Field(512 * 1024 * 1024, gt=0)
    allow_flush_commands: bool = False
    active_expiry_interval_ms: int = Field(100, gt=0)


class PersistenceConfig(_Section):
    enabled: bool = False
    data_dir: str = "./data"
    fsync_mode: Literal["always", "periodic", "never"] = "periodic"
    fsync_interval_ms: int = Field(1000, gt=0)
    snapshot_interval_secs: int = Field(300, ge=0)


class LoggingConfig(_Section):
    level: Literal["DEBUG", "INFO", "WARNING", "ERROR", "debug", "info", "warning", "error"] = (
        "INFO"
    )
    format: Literal["text", "json"] = "text"


class ReplicationConfig(_Section):
    # The ten keys of the product spec, with the spec's defaults.
    enabled: bool = False
    role: Literal["master", "replica", "standalone"] = "standalone"
    master_address: str | None = None
    replica_listen_address: str = "0.0.0.0:15501"
    heartbeat_interval_ms: int = Field(1000, gt=0)
    max_lag_ms: int = Field(10000, gt=0)
    buffer_size_kb: int = Field(256, gt=0)
    auto_reconnect: bool = True
    reconnect_delay_ms: int = Field(5000, ge=0)
    replica_timeout_secs: int = Field(30, gt=0)
    # Beyond the spec.
    log_max_ops: int = Field(1_000_000, gt=0)
    log_max_mb: int = Field(256, gt=0)
    output_buffer_limit_mb: int = Field(256, gt=0)
    auth_secret: str | None = None
    ack_interval_ms: int = Field(1000, gt=0)
    allow_empty_master: bool = False

    @field_validator("master_address", "replica_listen_address")
    @classmethod
    def _address(cls, value: str | None, info: Any) -> str | None:
        if value is not None:
            try:
                parse_address(value, key=f"replication.{info.field_name}")
            except ConfigError as exc:
                raise ValueError(str(exc)) from None
        return value

    @model_validator(mode="after")
    def _role_needs(self) -> ReplicationConfig:
        if self.role == "replica" and not self.master_address:
            raise ValueError(
                "replication.master_address is required when replication.role is 'replica'"
            )
        return self


class Config(_Section):
    server: ServerConfig = ServerConfig()
    kv_store: KVStoreConfig = KVStoreConfig()
    persistence: PersistenceConfig = PersistenceConfig()
    logging: LoggingConfig = LoggingConfig()
    replication: ReplicationConfig = ReplicationConfig()

    @property
    def role(self) -> str:
        return self.replication.role


def _format_error(exc: ValidationError) -> str:
    lines = []
    for err in exc.errors():
        key = ".".join(str(p) for p in err["loc"])
        msg = err["msg"].removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            lines.append(f"{key}: unknown configuration key")
        elif "input" in err and not isinstance(err["input"], dict) and key:
            lines.append(f"{key}: {msg} (got {err['input']!r})")
        else:
            lines.append(f"{key}: {msg}" if key else msg)
    return "; ".join(lines)


def build_config(raw: dict[str, Any]) -> Config:
    try:
        return Config.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(_format_error(exc)) from None


def load_config(
    path: str | Path | None, overrides: dict[str, dict[str, Any]] | None = None
) -> Config:
    """Read ``path`` (if given), apply ``overrides`` (section -> key -> value), validate."""
    raw: dict[str, Any] = {}
    if path is not None:
        try:
            text = Path(path).read_text()
        except OSError as exc:
            raise ConfigError(f"cannot read config file {path}: {exc.strerror}") from None
        try:
            loaded = yaml.safe_load(text) or {}
        except yaml.YAMLError as exc:
            raise ConfigError(f"config file {path} is not valid YAML: {exc}") from None
        if not isinstance(loaded, dict):
            raise ConfigError(f"config file {path} must hold a mapping of sections")
        raw = loaded
    for section, values in (overrides or {}).items():
        target = raw.setdefault(section, {})
        if not isinstance(target, dict):
            raise ConfigError(f"{section}: must be a mapping")
        target.update(values)
    # The spec's --role implies replication is enabled.
    repl = raw.get("replication")
    if isinstance(repl, dict) and repl.get("role") in ("master", "replica"):
        repl.setdefault("enabled", True)
    config = build_config(raw)
    if config.replication.enabled and config.replication.role == "standalone":
        pass  # enabled without a role stays standalone
    return config
