"""Settings: read from the environment once, validated at start-up.

A wrong value fails with the variable's name and what was expected. The chain settings and the key
may be unset at load time: each entry point states what it needs (`Settings.require`), so read-only
commands run on a machine without the signing key, and a missing setting names the command needing it.
`MARKET_FILE` (a devnet market file) fills in RPC_URL, WS_URL, POOL_ADDRESSES_PROVIDER, the liquidator
key, START_BLOCK and LIQUIDATOR_CONTRACT (once deployed); anything set explicitly in the environment wins.
"""

from __future__ import annotations

import json
import os
import stat
from decimal import Decimal
from functools import cache
from pathlib import Path
from typing import Annotated, Any

from eth_utils import is_address, to_checksum_address
from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from liqbot.errors import ConfigError
from liqbot.logs import LEVELS

WAD = 10**18
GWEI = 10**9
ZERO_ADDRESS = "0x" + "0" * 40
# The market file keeps our deployed FlashLiquidator among its contracts, under this name.
LIQUIDATOR_CONTRACT_KEY = "FlashLiquidator"
# For `Settings.require`: the signing key, LIQUIDATOR_PRIVATE_KEY or LIQUIDATOR_KEY_FILE.
LIQUIDATOR_KEY = "liquidator_key"
# What a market file is, in the one line that says a file is not one.
MARKET_FILE_EXPECTED = "expected a market file written by liqbot devnet up"

# What each variable expects, for error messages.
EXPECTED = {
    "rpc_url": "an http:// or https:// URL of an Ethereum JSON-RPC node",
    "ws_url": "a ws:// or wss:// URL of the same node",
    "pool_addresses_provider": "the 0x-address of the market's PoolAddressesProvider",
    "liquidator_contract": "the 0x-address of our FlashLiquidator (`liqbot contract deploy` prints it), or unset",
    "liquidator_private_key": "a 0x-prefixed 32-byte hex private key",
    "liquidator_key_file": "a path to a file (mode 0600) holding the private key",
    LIQUIDATOR_KEY: "a 0x-prefixed 32-byte hex private key, or a path to a file (mode 0600) holding it",
    "redis_url": ("a redis://, rediss:// or unix:// URL, or a Sentinel group: "
                  "sentinel://[:password@]host:26379;sentinel://host2:26379;.../0?master_name=NAME"),
    "database_url": "an SQLAlchemy URL, e.g. sqlite:///liqbot.sqlite or postgresql+psycopg://user@host/db",
    "ws_fast_path": "true or false",
    "mirror_detection": "true or false",
    "trust_mirror_plans": "true or false",
    "producer_sends": "true or false",
    "at_risk_hf": "a number above 1, e.g. 1.1",
    "market_file": "a devnet market file written by `liqbot devnet up`",
    "close_factor_rules": "auto, v3.0 or v3.3",
    "native_price_asset": "the symbol or address of the reserve priced like the gas token, e.g. WETH",
    "log_level": "DEBUG, INFO, WARNING, ERROR or CRITICAL",
    "task_events": "true or false",
    "backrun_watch": "comma-separated 0x-addresses (price feeds, forwarders) or nothing",
    "mempool_backrun": "true or false",
    "submit_route": "public (our node's mempool) or bundle (eth_sendBundle to RELAY_URLS)",
    "relay_urls": "comma-separated http:// or https:// URLs of bundle relays",
    "relay_signing_key": "a 0x-prefixed 32-byte hex key that signs relay requests (not the liquidator key)",
    "bundle_blocks": "how many consecutive blocks a bundle is sent for, e.g. 1",
}


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="", case_sensitive=False, extra="ignore", frozen=True)

    market_file: Path | None = None
    # Unset is valid at load time; the commands that use them say so (`require`).
    rpc_url: str | None = None
    ws_url: str | None = None
    pool_addresses_provider: str | None = None
    liquidator_contract: str | None = None  # our FlashLiquidator; unset: liquidations are paid from inventory
    liquidator_private_key: SecretStr | None = None
    liquidator_key_file: Path | None = None
    redis_url: str = "redis://127.0.0.1:6379/0"
    database_url: str = "sqlite:///liqbot.sqlite"
    ws_fast_path: bool = True
    mirror_detection: bool = True  # the fast path computes health from the in-memory mirror (no node call)
    # a fresh inventory plan of the mirror is sent without the verifying simulation (see execution.trusted)
    trust_mirror_plans: bool = True
    # ... and sent by the producer itself, the moment it detects the user (with LIQUIDATOR_KEY); the priority
    # task records it (see execution.send_first)
    producer_sends: bool = True
    dedupe_window_secs: float = Field(2.0, gt=0, le=3600)
    scan_interval_secs: float = Field(5.0, gt=0)
    full_rescan_interval_secs: float = Field(60.0, gt=0)
    capture_interval_secs: float = Field(15.0, gt=0)  # beat: the capture audit (every LiquidationCall, ours or lost)
    at_risk_hf: Decimal = Field(Decimal("1.1"), gt=1, le=100)
    start_block: int = Field(0, ge=0)
    liquidation_max_age_secs: float = Field(30.0, gt=0)
    liquidation_group_max: int = Field(32, ge=1, le=64)  # users detected together that one task liquidates together
    priority_heartbeat_ttl_secs: float = Field(5.0, gt=0)
    scan_batch_size: int = Field(500, ge=1, le=10_000)
    lane_yield_ms: int = Field(100, ge=0, le=10_000)  # bookkeeping holds its node reads this long after lane activity
    lane_yield_max_ms: int = Field(1_000, ge=0, le=60_000)  # ... but never longer than this per task
    log_page_blocks: int = Field(5_000, ge=1)
    max_priority_fee_gwei: Decimal = Field(Decimal("1"), ge=0)
    max_gas_price_gwei: Decimal = Field(Decimal("500"), gt=0)
    rpc_timeout_secs: float = Field(10.0, gt=0)
    dry_run: bool = False
    min_profit_base: int = Field(0, ge=0)
    tip_profit_share_bps: int = Field(1000, ge=0, le=10_000)
    native_price_asset: str = "WETH"
    close_factor_rules: str = Field("auto", pattern="^(auto|v3.0|v3.3)$")
    breaker_max_attempts: int = Field(200, ge=1)
    breaker_window_secs: float = Field(60.0, gt=0)
    breaker_max_failures: int = Field(3, ge=1)
    breaker_cooldown_secs: float = Field(30.0, gt=0)
    receipt_timeout_secs: float = Field(180.0, gt=0)
    liquidation_gas_limit: int = Field(1_500_000, ge=100_000)
    liquidation_gas_estimate: int = Field(400_000, ge=21_000)  # until receipts have taught a better one
    flash_gas_estimate: int = Field(600_000, ge=21_000)  # flash loan + liquidation + swap, until receipts teach it
    flash_gas_limit: int = Field(1_500_000, ge=100_000)
    flash_slippage_bps: int = Field(5_000, ge=0, le=10_000)  # a flash call reverts below its quote less this share
    # (never below break-even: gas and MIN_PROFIT_BASE)
    mempool_backrun: bool = False  # the producer back-runs pending price updates (needs a node with a mempool)
    backrun_watch: str = ""  # more addresses whose pending transactions may move a price (comma-separated)
    fault_inject_revert: bool = False  # tests only: send liquidations with too little gas, so they revert
    fault_pause_after_send_secs: float = Field(0.0, ge=0)  # tests only: a window to kill a worker mid-liquidation
    redis_prefix: str = Field("liqbot", min_length=1)
    log_level: str = "INFO"
    task_events: bool = False  # events for Flower always; off: workers' only while Flower runs (it switches them on)
    metrics_port: int = Field(0, ge=0, le=65535)  # 0: off; the producer serves it, workers on metrics_port + 1, + 2, ...
    submit_route: str = Field("public", pattern="^(public|bundle)$")  # see liqbot/chain/submit.py
    relay_urls: Annotated[list[str], NoDecode] = []  # comma-separated in the environment, not JSON
    relay_signing_key: SecretStr | None = None  # identifies us to relays; holds no funds
    bundle_blocks: int = Field(1, ge=1, le=25)  # a bundle is sent for the next block and the ones after

    @model_validator(mode="before")
    @classmethod
    def _from_market_file(cls, data: Any) -> Any:
        """What the environment leaves unset comes from the file, which must then hold it. A file of another
        shape raises ConfigError (one line naming the file and the field), which pydantic lets through."""
        path = data.get("market_file") or data.get("MARKET_FILE") if isinstance(data, dict) else None
        if not path:
            return data
        market = MarketFile.read(path, label="MARKET_FILE")
        given = {k for k, v in data.items() if v not in (None, "")}
        defaults = {field: market.get(*where) for field, where in MARKET_FIELDS.items() if field not in given}
        defaults["start_block"] = market.get("deploy_block", default=0)
        deployed = market.get("contracts", LIQUIDATOR_CONTRACT_KEY, default=None)  # by `liqbot contract deploy`
        if deployed:
            defaults["liquidator_contract"] = deployed
        if not given & {"liquidator_key_file", "liquidator_private_key"}:
            defaults["liquidator_private_key"] = market.get("accounts", "liquidator", "private_key")
        return {**defaults, **{k: v for k, v in data.items() if v not in (None, "")}}

    @field_validator("rpc_url")
    @classmethod
    def _http(cls, v: str | None) -> str | None:
        if v is not None and not v.startswith(("http://", "https://")):
            raise ValueError("not an http(s) URL")
        return v

    @field_validator("ws_url")
    @classmethod
    def _ws(cls, v: str | None) -> str | None:
        if v is not None and not v.startswith(("ws://", "wss://")):
            raise ValueError("not a ws(s) URL")
        return v

    @field_validator("redis_url")
    @classmethod
    def _redis(cls, v: str) -> str:
        from liqbot.store.redis_url import check

        return check(v)

    @field_validator("log_level")
    @classmethod
    def _level(cls, v: str) -> str:
        level = v.strip().upper()
        level = "WARNING" if level == "WARN" else level
        if level not in LEVELS:
            raise ValueError("not a log level")
        return level

    @field_validator("backrun_watch")
    @classmethod
    def _addresses(cls, v: str) -> str:
        parts = [p.strip() for p in v.split(",") if p.strip()]
        if any(not is_address(p) for p in parts):
            raise ValueError("not a comma-separated list of addresses")
        return ",".join(to_checksum_address(p) for p in parts)

    @property
    def backrun_watch_list(self) -> list[str]:
        return [p for p in self.backrun_watch.split(",") if p]

    @field_validator("pool_addresses_provider", "liquidator_contract")
    @classmethod
    def _address(cls, v: str | None) -> str | None:
        if v is None:
            return v
        if not is_address(v) or int(v, 16) == 0:
            raise ValueError("not a non-zero address")
        return to_checksum_address(v)

    @field_validator("relay_urls", mode="before")
    @classmethod
    def _relay_urls(cls, v: Any) -> Any:
        urls = [u.strip() for u in v.split(",") if u.strip()] if isinstance(v, str) else v
        if isinstance(urls, list) and any(not str(u).startswith(("http://", "https://")) for u in urls):
            raise ValueError("not a list of http(s) URLs")
        return urls

    @field_validator("relay_signing_key", mode="before")
    @classmethod
    def _unset_if_empty(cls, v: Any) -> Any:
        return None if v == "" else v

    @field_validator("liquidator_private_key", "relay_signing_key")
    @classmethod
    def _key(cls, v: SecretStr | None) -> SecretStr | None:
        if v is not None:
            raw = v.get_secret_value().strip().removeprefix("0x")
            if len(raw) != 64 or any(c not in "0123456789abcdefABCDEF" for c in raw):
                raise ValueError("not a 32-byte hex key")  # never echo the value
            return SecretStr("0x" + raw.lower())
        return v

    @model_validator(mode="after")
    def _one_key(self) -> Settings:
        """Both set is ambiguous; neither is fine here: only signing processes need a key (`require`)."""
        if self.liquidator_private_key is not None and self.liquidator_key_file is not None:
            raise ValueError("LIQUIDATOR_PRIVATE_KEY or LIQUIDATOR_KEY_FILE: set exactly one of them")
        return self

    @model_validator(mode="after")
    def _bundle_route(self) -> Settings:
        """The bundle route needs somewhere to send and a searcher key of its own (a key file is compared
        in `require`, once it is read)."""
        if self.submit_route != "bundle":
            return self
        if not self.relay_urls:
            raise ValueError(f"RELAY_URLS: required when SUBMIT_ROUTE=bundle; expected {EXPECTED['relay_urls']}")
        if self.relay_signing_key is None:
            raise ValueError(f"RELAY_SIGNING_KEY: required when SUBMIT_ROUTE=bundle; expected {EXPECTED['relay_signing_key']}")
        if self.liquidator_private_key is not None:
            self._check_relay_key(self.liquidator_private_key.get_secret_value())
        return self

    def _check_relay_key(self, liquidator_key: str) -> None:
        if self.relay_signing_key is not None and self.relay_signing_key.get_secret_value() == liquidator_key:
            # relays see the signer's address: it must not be the one holding our funds
            raise ValueError("RELAY_SIGNING_KEY: must not be the liquidator key; expected a separate key holding no funds")

    @property
    def at_risk_hf_wad(self) -> int:
        return int(self.at_risk_hf * WAD)

    @property
    def max_priority_fee_wei(self) -> int:
        return int(self.max_priority_fee_gwei * GWEI)

    @property
    def max_gas_price_wei(self) -> int:
        return int(self.max_gas_price_gwei * GWEI)

    def require(self, *fields: str, command: str = "") -> Settings:
        """These settings, or a ConfigError with one line per missing variable naming `command` (the one that
        needs it) and what is expected. LIQUIDATOR_KEY is either key variable; a key file is read now, so a
        signing process stops at start-up, not at its first transaction."""
        missing = [f"{_var(f)}: {f'required by {command}' if command else 'not set'}; expected {EXPECTED[f]}"
                   for f in fields if not self.is_set(f)]
        if missing:
            raise ConfigError("\n".join(missing))
        if LIQUIDATOR_KEY in fields and self.liquidator_key_file is not None:
            key = self.private_key()
            if self.submit_route == "bundle":
                try:
                    self._check_relay_key(key)
                except ValueError as exc:
                    raise ConfigError(str(exc)) from None
        return self

    def is_set(self, field: str) -> bool:
        if field == LIQUIDATOR_KEY:
            return self.liquidator_private_key is not None or self.liquidator_key_file is not None
        return getattr(self, field) is not None

    def private_key(self) -> str:
        """The liquidator's key; read only where a transaction is signed."""
        if self.liquidator_private_key is not None:
            return self.liquidator_private_key.get_secret_value()
        path = self.liquidator_key_file
        if path is None:
            self.require(LIQUIDATOR_KEY)
        assert path is not None
        try:
            mode = stat.S_IMODE(path.stat().st_mode)
            raw = path.read_text().strip()
        except OSError as exc:
            raise ConfigError(f"LIQUIDATOR_KEY_FILE: cannot read {path}: {exc.strerror}") from None
        if mode & 0o077:
            raise ConfigError(f"LIQUIDATOR_KEY_FILE: {path} has mode {mode:04o}; expected 0600 (chmod 600 {path})")
        try:
            return self._key(SecretStr(raw)).get_secret_value()  # type: ignore[union-attr]
        except ValueError:
            raise ConfigError(f"LIQUIDATOR_KEY_FILE: {path} does not hold a 32-byte hex key") from None

    def redacted(self) -> dict[str, Any]:
        """The effective configuration, safe to print."""
        out = self.model_dump()
        if self.liquidator_private_key is not None:
            out["liquidator_private_key"] = "0x****" + "(masked)"
        if self.relay_signing_key is not None:
            out["relay_signing_key"] = "0x****" + "(masked)"
        out["redis_url"] = _mask_url(self.redis_url)
        out["database_url"] = _mask_url(self.database_url)
        return {k: (str(v) if isinstance(v, Path | Decimal) else v) for k, v in out.items()}


def _var(field: str) -> str:
    return "LIQUIDATOR_PRIVATE_KEY or LIQUIDATOR_KEY_FILE" if field == LIQUIDATOR_KEY else field.upper()


# Settings a market file fills in, and where it keeps them (the key and the rest: `_from_market_file`).
MARKET_FIELDS = {
    "rpc_url": ("rpc_url",),
    "ws_url": ("ws_url",),
    "pool_addresses_provider": ("contracts", "PoolAddressesProvider"),
}
_REQUIRED = object()


class MarketFile:
    """A market file (`liqbot devnet up` writes one), read by everything that reads one: a file that is
    missing, not JSON, or of another shape (hand-written, an older version) is one ConfigError line naming
    the file and what is missing, e.g. `MARKET_FILE /x/m.json: no "rpc_url" (expected a market file ...)`."""

    def __init__(self, path: Path, data: dict[str, Any], label: str = "market file"):
        self.path, self.data, self.label = path, data, label

    @classmethod
    def read(cls, path: str | Path, label: str = "market file") -> MarketFile:
        path = Path(path)
        try:
            data = json.loads(path.read_text())
        except FileNotFoundError:
            raise ConfigError(f"{label} {path}: not found ({MARKET_FILE_EXPECTED})") from None
        except OSError as exc:
            raise ConfigError(f"{label} {path}: cannot read it: {exc.strerror or exc} ({MARKET_FILE_EXPECTED})") from None
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise ConfigError(f"{label} {path}: not JSON ({exc}; {MARKET_FILE_EXPECTED})") from None
        if not isinstance(data, dict):
            raise ConfigError(f"{label} {path}: a JSON {type(data).__name__}, not an object ({MARKET_FILE_EXPECTED})")
        return cls(path, data, label)

    def get(self, *keys: str, default: Any = _REQUIRED) -> Any:
        """The value at `keys` (nested objects); without a default, a ConfigError if it is not there."""
        node: Any = self.data
        for key in keys:
            if not isinstance(node, dict) or key not in node:
                if default is _REQUIRED:
                    raise self.missing(".".join(keys))
                return default
            node = node[key]
        return node

    def missing(self, what: str) -> ConfigError:
        return ConfigError(f'{self.label} {self.path}: no "{what}" ({MARKET_FILE_EXPECTED})')


def _mask_url(url: str) -> str:
    """Hide a password in scheme://user:password@host."""
    scheme, sep, rest = url.partition("://")
    creds, at, host = rest.rpartition("@")
    if not at or ":" not in creds:
        return url
    return f"{scheme}{sep}{creds.split(':', 1)[0]}:****@{host}"


def load_settings(**overrides: Any) -> Settings:
    """Build the settings, turning pydantic's report into one clear ConfigError."""
    try:
        settings = Settings(**overrides)
    except ValidationError as exc:
        lines = []
        for err in exc.errors():
            field = str(err["loc"][0]) if err["loc"] else ""
            msg = err["msg"].removeprefix("Value error, ")
            if field:
                lines.append(f"{field.upper()}: {msg}; expected {EXPECTED.get(field, _expected_from(err))}")
            else:
                lines.append(msg)
        raise ConfigError("invalid configuration:\n  " + "\n  ".join(lines)) from None
    if settings.submit_route == "bundle" and settings.liquidator_key_file is not None:
        try:  # compared where the key file can be read; the processes that sign read it in `require`
            key: str | None = settings.private_key()
        except ConfigError:
            key = None
        if key is not None:
            try:
                settings._check_relay_key(key)
            except ValueError as exc:
                raise ConfigError(f"invalid configuration:\n  {exc}") from None
    return settings


def _expected_from(err: dict) -> str:
    ctx = err.get("ctx") or {}
    if "gt" in ctx:
        return f"a number above {ctx['gt']}"
    if "ge" in ctx:
        return f"a number of at least {ctx['ge']}"
    if "le" in ctx:
        return f"a number of at most {ctx['le']}"
    return {"int_parsing": "an integer", "float_parsing": "a number", "decimal_parsing": "a number",
            "bool_parsing": "true or false"}.get(err["type"], "a valid value")


@cache
def get_settings() -> Settings:
    return load_settings(market_file=os.environ.get("MARKET_FILE") or None)


def get_settings_or_exit(*required: str, command: str = "") -> Settings:
    """For entry points that liqbot's CLI does not wrap (celery worker / beat / flower): the settings with
    `required` set (see `Settings.require`), or one clear message and exit code 2."""
    import sys

    try:
        return get_settings().require(*required, command=command)
    except ConfigError as exc:
        print(f"liqbot: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
