"""Configuration: the YAML file's structure, its defaults, validation, and CLI overrides.

The ``replication:`` block carries the ten keys of the product spec with the spec's
defaults, plus the replication-log, security and buffer settings the spec leaves open.
Validation errors name the offending key and value, e.g.
``replication.master_address: 'nohost' is not an IP:port address``.
"""

from __future__ import annotations

import ipaddress
import weakref
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator


class ConfigError(Exception):
    """The configuration cannot be used; the message says which key and why.

    ``problems`` holds one line per problem (the message is those lines joined by
    newlines), so that the CLI prints each on its own line.
    """

    def __init__(self, *problems: str) -> None:
        super().__init__("\n".join(problems))
        self.problems = list(problems)


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


def is_loopback(host: str) -> bool:
    """True if only this machine can reach a listener bound to ``host``."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a host name: assume it resolves to a reachable address


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
    rpc_port: int = Field(15500, ge=0, le=65535, description="SynapRPC (synap://); 0 = off")
    max_body_bytes: int = Field(64 * 1024 * 1024, gt=0)
    max_clients: int = Field(10000, gt=0)
    # Redis's "timeout": close a Redis-protocol client idle this long (0 = never).
    client_timeout_secs: int = Field(0, ge=0)
    api_keys: list[str] = Field(default_factory=list)
    admin_key: str | None = None

    @field_validator("api_keys")
    @classmethod
    def _no_empty_keys(cls, value: list[str]) -> list[str]:
        # An empty key would let "Authorization: Bearer " (or AUTH "") in.
        if any(not key for key in value):
            raise ValueError("a key must not be empty")
        return value

    @field_validator("admin_key")
    @classmethod
    def _admin_not_empty(cls, value: str | None) -> str | None:
        if value is not None and not value:
            raise ValueError("must not be empty (leave it unset for none)")
        return value


class KVStoreConfig(_Section):
    max_memory_mb: int = Field(0, ge=0, description="0 = unlimited")
    eviction_policy: Literal["none", "lru", "lfu", "ttl"] = "none"
    max_key_bytes: int = Field(64 * 1024, gt=0)
    # A record must fit one replication frame (u32 length): at most 4 GiB minus headroom.
    max_value_bytes: int = Field(512 * 1024 * 1024, gt=0, le=4 * 1024**3 - 8 * 1024**2)
    allow_flush_commands: bool = False
    active_expiry_interval_ms: int = Field(100, gt=0)
    # Python's object memory on transparent huge pages (synap/hugepages.py): auto = when
    # the kernel's THP mode allows it; SYNAP_HUGE_PAGES in the environment wins.
    huge_pages: Literal["auto", "never"] = "never"
    # 8-byte size classes for 129-504-byte objects (synap/sizeclasses.py): fine = a
    # 100-byte value takes 136 bytes instead of pymalloc's 144.
    size_classes: Literal["fine", "pymalloc"] = "fine"
    # A master's values of up to 471 bytes in memory shared with a full sync's forked
    # child (synap/sizeclasses.py): its fork() copies no page tables for them.
    # SYNAP_SHARED_VALUES in the environment wins.
    shared_values: bool = True


class LogRetentionConfig(_Section):
    """How much of the WAL to keep as the replication log (docs/OPERATIONS.md, sizing).

    null = no limit of that kind; a segment goes once any limit is exceeded *and* no
    kept snapshot needs it.  Defaults: 1 hour or 8 GiB, whichever is reached first."""

    max_mb: int | None = Field(8192, ge=0)
    max_age_secs: int | None = Field(3600, ge=0)
    max_records: int | None = Field(None, ge=0)


class PersistenceConfig(_Section):
    enabled: bool = False
    data_dir: str = "./data"
    fsync_mode: Literal["always", "periodic", "never"] = "periodic"
    fsync_interval_ms: int = Field(1000, gt=0)
    snapshot_interval_secs: int = Field(300, ge=0)
    segment_max_mb: int = Field(64, gt=0)
    log_retention: LogRetentionConfig = LogRetentionConfig()


class LoggingConfig(_Section):
    level: Literal["DEBUG", "INFO", "WARNING", "ERROR", "debug", "info", "warning", "error"] = (
        "INFO"
    )
    format: Literal["text", "json"] = "text"


class FailoverConfig(_Section):
    """``replication.failover``: who decides the roles (docs/CONFIGURATION.md).

    ``manual`` (the default) is today's behaviour: the operator promotes. ``etcd``: the
    nodes of ``group`` elect a master through etcd (synap/coordination/)."""

    mode: Literal["manual", "etcd"] = "manual"
    etcd_endpoints: list[str] = Field(default_factory=list)
    group: str = "synap"
    node_id: str | None = None  # default: this node's HTTP address (host:port)
    # etcd's minimum lease is 2 s; 3 suits tests and loopback, 10 production.
    lease_ttl_secs: int = Field(3, ge=2, le=3600)
    priority: int = Field(100, ge=0, le=1_000_000)  # 0 = never promoted
    max_lag_on_failover: int = Field(10000, ge=0)  # records
    # The replica listener address published in etcd, when replicas must reach it some
    # other way than replica_listen_address (NAT, a container port, a proxy; Redis
    # replica-announce-ip/port). Default: replica_listen_address.
    announce_replica_address: str | None = None

    @field_validator("announce_replica_address")
    @classmethod
    def _announce(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                parse_address(value, key="replication.failover.announce_replica_address")
            except ConfigError as exc:
                raise ValueError(str(exc)) from None
        return value

    @field_validator("etcd_endpoints", mode="before")
    @classmethod
    def _split_endpoints(cls, value: Any) -> Any:
        if isinstance(value, str):  # "http://a:2379,http://b:2379" from a flag or YAML
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    @field_validator("etcd_endpoints")
    @classmethod
    def _endpoint_urls(cls, value: list[str]) -> list[str]:
        out = []
        for url in value:
            text = url.strip().rstrip("/")
            scheme, sep, rest = text.partition("://")
            if not sep:
                scheme, rest = "http", text
            if scheme not in ("http", "https"):
                raise ValueError(
                    f"replication.failover.etcd_endpoints: {url!r} must be an http:// or "
                    "https:// URL (example: http://127.0.0.1:2379)"
                )
            try:
                parse_address(rest, key="replication.failover.etcd_endpoints")
            except ConfigError as exc:
                raise ValueError(str(exc)) from None
            out.append(f"{scheme}://{rest}")
        return out

    @field_validator("group", "node_id")
    @classmethod
    def _name(cls, value: str | None, info: Any) -> str | None:
        if value is None:
            return value
        allowed = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.:")
        if not value or len(value) > 128 or not set(value) <= allowed:
            raise ValueError(
                f"replication.failover.{info.field_name}: {value!r} must be 1-128 characters "
                "of letters, digits, '-', '_', '.', ':'"
            )
        return value

    @model_validator(mode="after")
    def _etcd_needs_endpoints(self) -> FailoverConfig:
        if self.mode == "etcd" and not self.etcd_endpoints:
            raise ValueError(
                "replication.failover.etcd_endpoints is required when replication.failover.mode "
                "is 'etcd' (flag --etcd-endpoints URL[,URL...])"
            )
        return self


class WaitConfig(_Section):
    """How many copies a write waits for before its answer (``replication.default_wait``
    and the HTTP ``"wait"`` field): ``replicas`` is a count, ``"majority"`` (of the group,
    master included) or ``"all"``; ``fsync`` counts copies fsynced to a WAL instead."""

    replicas: int | Literal["majority", "all"] = 0
    timeout_ms: int = Field(1000, gt=0, le=3_600_000)
    fsync: bool = False

    @field_validator("replicas")
    @classmethod
    def _replicas(cls, value: int | str) -> int | str:
        if isinstance(value, int) and value < 0:
            raise ValueError("must be >= 0, 'majority' or 'all'")
        return value


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
    failover: FailoverConfig = FailoverConfig()
    # Consistency controls (docs/CONSISTENCY.md).
    min_replicas_to_write: int = Field(0, ge=0)
    min_replicas_max_lag_secs: int = Field(10, ge=0)
    group_size: int | None = Field(None, ge=1, description="nodes in the group, master included")
    default_wait: WaitConfig = WaitConfig()
    serve_stale_reads: bool = True

    @field_validator("master_address", "replica_listen_address")
    @classmethod
    def _address(cls, value: str | None, info: Any) -> str | None:
        if value is not None:
            try:
                parse_address(value, key=f"replication.{info.field_name}")
            except ConfigError as exc:
                raise ValueError(str(exc)) from None
        return value

    @field_validator("auth_secret")
    @classmethod
    def _secret_not_empty(cls, value: str | None) -> str | None:
        # "" would otherwise read as "no secret" and silently turn authentication off.
        if value is not None and not value:
            raise ValueError(
                "must not be empty (leave it unset to disable replication authentication)"
            )
        return value

    @model_validator(mode="after")
    def _role_needs(self) -> ReplicationConfig:
        etcd = self.failover.mode == "etcd"
        if self.role == "replica" and not self.master_address and not etcd:
            raise ValueError(
                "replication.master_address is required when replication.role is 'replica'"
            )
        if etcd and self.role not in ("master", "replica"):
            raise ValueError(
                "replication.failover.mode 'etcd' needs replication.role master (may be "
                "elected) or replica (follows the elected master); got "
                f"{self.role!r}"
            )
        if self.default_wait.replicas == "majority" and self.group_size is None and not etcd:
            raise ValueError(
                "replication.default_wait.replicas 'majority' needs replication.group_size "
                "(the number of nodes in the group, master included)"
            )
        return self


class TlsConfig(_Section):
    """TLS (synap/tls.py). Off by default; see docs/SECURITY.md for a step-by-step setup."""

    cert_file: str | None = None  # PEM certificate (chain) this node presents
    key_file: str | None = None  # its private key, PEM, unencrypted (default: in cert_file)
    ca_file: str | None = None  # PEM CA(s) peers' certificates must chain to
    replication: bool = False  # replica listener serves TLS; replicas connect with TLS
    clients: bool = False  # the HTTP, RESP and SynapRPC ports serve TLS
    require_replica_cert: bool = False  # replica listener demands a cert signed by ca_file
    require_client_cert: bool = False  # HTTP, RESP and SynapRPC demand a cert signed by ca_file

    @model_validator(mode="after")
    def _files_needed(self) -> TlsConfig:
        if (self.replication or self.clients) and not self.cert_file:
            raise ValueError(
                "tls.cert_file is required when tls.replication or tls.clients is true "
                "(every node with TLS on may serve a TLS listener)"
            )
        for flag in ("require_replica_cert", "require_client_cert"):
            if getattr(self, flag) and not self.ca_file:
                raise ValueError(
                    f"tls.{flag} needs tls.ca_file (the CA that signs the certificates "
                    "peers must present)"
                )
        return self


class Config(_Section):
    server: ServerConfig = ServerConfig()
    kv_store: KVStoreConfig = KVStoreConfig()
    persistence: PersistenceConfig = PersistenceConfig()
    logging: LoggingConfig = LoggingConfig()
    replication: ReplicationConfig = ReplicationConfig()
    tls: TlsConfig = TlsConfig()

    @property
    def source_path(self) -> Path | None:
        """The file this configuration was read from (CONFIG REWRITE writes it back)."""
        return _SOURCE_PATHS.get(id(self))

    @property
    def role(self) -> str:
        return self.replication.role


def _known_keys(loc: tuple[Any, ...]) -> list[str]:
    """The keys allowed beside the unknown one at ``loc`` (section names at the top)."""
    model: type[BaseModel] = Config
    for part in loc[:-1]:
        field = model.model_fields.get(str(part))
        annotation = field.annotation if field is not None else None
        if not (isinstance(annotation, type) and issubclass(annotation, BaseModel)):
            return []
        model = annotation
    return list(model.model_fields)


def _format_error(exc: ValidationError) -> list[str]:
    """One line per problem, each naming the key and the value it was given."""
    lines = []
    for err in exc.errors():
        loc = tuple(err["loc"])
        key = ".".join(str(p) for p in loc)
        msg = err["msg"].removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            known = ", ".join(_known_keys(loc))
            lines.append(f"{key}: unknown configuration key (known here: {known})")
            continue
        # Our own validators already name the key ("replication.master_address: ...").
        text = msg if not key or msg.startswith((f"{key}:", f"{key}.")) else f"{key}: {msg}"
        value = err.get("input")
        if key and not isinstance(value, dict) and repr(value) not in msg:
            text += f" (got {value!r})"
        lines.append(text)
    return lines


def build_config(raw: dict[str, Any]) -> Config:
    try:
        return Config.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(*_format_error(exc)) from None


_SOURCE_PATHS: dict[int, Path] = {}


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
    repl_file = raw.get("replication")
    file_role = repl_file.get("role") if isinstance(repl_file, dict) else None
    for section, values in (overrides or {}).items():
        target = raw.setdefault(section, {})
        if not isinstance(target, dict):
            raise ConfigError(f"{section}: must be a mapping")
        for key, value in values.items():
            # A nested override (replication.failover from flags) merges with the file's.
            if isinstance(value, dict) and isinstance(target.get(key), dict):
                target[key] = {**target[key], **value}
            else:
                target[key] = value
    _etcd_mode_from_endpoints(raw)
    _flag_precedence(raw, (overrides or {}).get("replication", {}), file_role, path)
    config = build_config(raw)
    if path is not None:
        # Kept beside the model, not in it, so that equal settings compare equal.
        _SOURCE_PATHS[id(config)] = Path(path).resolve()
        weakref.finalize(config, _SOURCE_PATHS.pop, id(config), None)
    return config


def _flag_precedence(
    raw: dict[str, Any], flags: dict[str, Any], file_role: Any, path: str | Path | None
) -> None:
    """What the replication flags imply, so that no flag is silently ignored
    (docs/CONFIGURATION.md, "Precedence"):

    * ``--role master|replica`` turns replication on, even over the file's
      ``replication.enabled: false``; ``--role standalone`` turns it off.
    * ``--master-address`` without ``--role`` makes the node a replica, unless the file
      names another role explicitly: then it is an error (say ``--role replica``); with
      ``--role master|standalone`` it is an error too.
    * Without flags, a file's ``role: master|replica`` turns replication on unless the
      file sets ``enabled`` itself.
    """
    repl = raw.get("replication")
    if not isinstance(repl, dict):
        return
    role_flag = flags.get("role")
    if role_flag in ("master", "standalone") and flags.get("master_address") is not None:
        raise ConfigError(
            f"--master-address is for replicas, but --role is {role_flag}; drop one of them "
            "(a master or standalone node follows no master)"
        )
    if role_flag is None and flags.get("master_address") is not None:
        if file_role not in (None, "replica"):
            source = f"the config file {path}" if path is not None else "the configuration"
            raise ConfigError(
                f"--master-address makes this node a replica, but {source} sets "
                f"replication.role: {file_role}; add --role replica to make it one, "
                "or drop --master-address"
            )
        repl["role"] = role_flag = "replica"
    if "enabled" in flags:
        pass  # set explicitly alongside the role
    elif role_flag in ("master", "replica"):
        repl["enabled"] = True
    elif role_flag == "standalone":
        repl["enabled"] = False
    elif repl.get("role") in ("master", "replica"):
        repl.setdefault("enabled", True)


def _etcd_mode_from_endpoints(raw: dict[str, Any]) -> None:
    """Naming etcd endpoints (--etcd-endpoints) turns automatic failover on, unless the
    file sets replication.failover.mode itself."""
    repl = raw.get("replication")
    failover = repl.get("failover") if isinstance(repl, dict) else None
    if isinstance(failover, dict) and failover.get("etcd_endpoints"):
        failover.setdefault("mode", "etcd")
