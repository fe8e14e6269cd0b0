"""Settings are validated once, and every error names the variable and what was expected."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from liqbot.config import LIQUIDATOR_KEY, load_settings
from liqbot.errors import ConfigError

KEY = "0x" + "ab" * 32
GOOD = {
    "RPC_URL": "http://127.0.0.1:8545",
    "WS_URL": "ws://127.0.0.1:8545",
    "POOL_ADDRESSES_PROVIDER": "0x5fbdb2315678afecb367f032d93f642f64180aa3",
    "LIQUIDATOR_PRIVATE_KEY": KEY,
}
CONFIG_VARS = [*GOOD, "MARKET_FILE", "LIQUIDATOR_KEY_FILE", "REDIS_URL", "DATABASE_URL", "WS_FAST_PATH",
               "DEDUPE_WINDOW_SECS", "AT_RISK_HF", "START_BLOCK", "SCAN_INTERVAL_SECS"]


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in CONFIG_VARS:
        monkeypatch.delenv(var, raising=False)


def _with(monkeypatch: pytest.MonkeyPatch, **env: str) -> None:
    for k, v in {**GOOD, **env}.items():
        monkeypatch.setenv(k, v)


def test_defaults(monkeypatch: pytest.MonkeyPatch):
    _with(monkeypatch)
    s = load_settings()
    assert s.ws_fast_path is True
    assert s.dedupe_window_secs == 2
    assert s.database_url.startswith("sqlite:///")
    assert s.pool_addresses_provider == "0x5FbDB2315678afecb367f032d93F642f64180aa3"
    assert s.at_risk_hf_wad == 11 * 10**17
    assert s.private_key() == KEY


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({"RPC_URL": "localhost:8545"}, "RPC_URL: not an http(s) URL"),
        ({"WS_URL": "http://x"}, "WS_URL: not a ws(s) URL"),
        ({"POOL_ADDRESSES_PROVIDER": "0x1234"}, "POOL_ADDRESSES_PROVIDER: not a non-zero address"),
        ({"POOL_ADDRESSES_PROVIDER": "0x" + "0" * 40}, "POOL_ADDRESSES_PROVIDER: not a non-zero address"),
        ({"LIQUIDATOR_PRIVATE_KEY": "0x12"}, "LIQUIDATOR_PRIVATE_KEY: not a 32-byte hex key"),
        ({"REDIS_URL": "localhost:6379"}, "REDIS_URL: not a redis URL"),
        ({"WS_FAST_PATH": "maybe"}, "WS_FAST_PATH"),
        ({"DEDUPE_WINDOW_SECS": "-1"}, "DEDUPE_WINDOW_SECS: Input should be greater than 0; expected a number above 0"),
        ({"AT_RISK_HF": "0.9"}, "AT_RISK_HF"),
        ({"START_BLOCK": "latest"}, "START_BLOCK: Input should be a valid integer"),
        ({"MARKET_FILE": "/nonexistent/market.json"}, "MARKET_FILE /nonexistent/market.json: not found"),
    ],
)
def test_bad_values_name_the_variable(monkeypatch: pytest.MonkeyPatch, env: dict, expected: str):
    _with(monkeypatch, **env)
    with pytest.raises(ConfigError) as err:
        load_settings(market_file=os.environ.get("MARKET_FILE"))
    assert expected in str(err.value)
    assert "0x12" not in str(err.value).replace("0x1234", "")  # a bad key is never echoed


def test_missing_values_are_all_listed_with_the_command_needing_them():
    s = load_settings()  # nothing is required to load: each command states what it needs
    with pytest.raises(ConfigError) as err:
        s.require("rpc_url", "ws_url", "pool_addresses_provider", LIQUIDATOR_KEY, command="liqbot producer")
    lines = str(err.value).splitlines()
    assert [line.split(":")[0] for line in lines] == [
        "RPC_URL", "WS_URL", "POOL_ADDRESSES_PROVIDER", "LIQUIDATOR_PRIVATE_KEY or LIQUIDATOR_KEY_FILE"]
    assert all("required by liqbot producer; expected " in line for line in lines)


def test_at_most_one_key_source_and_the_key_file_is_read_where_it_is_required(monkeypatch: pytest.MonkeyPatch,
                                                                                tmp_path: Path):
    _with(monkeypatch)
    monkeypatch.delenv("LIQUIDATOR_PRIVATE_KEY")
    with pytest.raises(ConfigError, match="LIQUIDATOR_PRIVATE_KEY or LIQUIDATOR_KEY_FILE: required by celery worker"):
        load_settings().require(LIQUIDATOR_KEY, command="celery worker")
    with pytest.raises(ConfigError, match="LIQUIDATOR_PRIVATE_KEY or LIQUIDATOR_KEY_FILE: not set"):
        load_settings().private_key()
    key_file = tmp_path / "key"
    key_file.write_text(KEY + "\n")
    key_file.chmod(0o644)
    monkeypatch.setenv("LIQUIDATOR_KEY_FILE", str(key_file))
    s = load_settings()  # a command that does not sign never reads the key file
    with pytest.raises(ConfigError, match="mode 0644; expected 0600"):
        s.require(LIQUIDATOR_KEY, command="celery worker")
    key_file.chmod(0o600)
    assert load_settings().require(LIQUIDATOR_KEY).private_key() == KEY
    monkeypatch.setenv("LIQUIDATOR_PRIVATE_KEY", KEY)
    with pytest.raises(ConfigError, match="set exactly one"):
        load_settings()


def test_market_file_fills_in_the_chain_settings(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    market = {"rpc_url": "http://127.0.0.1:9999", "ws_url": "ws://127.0.0.1:9999", "deploy_block": 7,
              "contracts": {"PoolAddressesProvider": GOOD["POOL_ADDRESSES_PROVIDER"]},
              "accounts": {"liquidator": {"private_key": KEY}}}
    path = tmp_path / "market.json"
    path.write_text(json.dumps(market))
    s = load_settings(market_file=str(path))
    assert (s.rpc_url, s.start_block, s.private_key()) == ("http://127.0.0.1:9999", 7, KEY)
    monkeypatch.setenv("START_BLOCK", "3")  # the environment wins
    assert load_settings(market_file=str(path)).start_block == 3


def test_redacted_config_masks_secrets(monkeypatch: pytest.MonkeyPatch):
    _with(monkeypatch, REDIS_URL="redis://:hunter2@127.0.0.1:6379/0",
          DATABASE_URL="postgresql+psycopg://bot:s3cret@db/liqbot")
    shown = json.dumps(load_settings().redacted())
    for secret in (KEY[2:], "hunter2", "s3cret"):
        assert secret not in shown


def _run(*argv: str, env: dict) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if k not in CONFIG_VARS}
    return subprocess.run(argv, capture_output=True, text=True, env={**clean, **env}, timeout=60, check=False,
                          cwd=Path(__file__).resolve().parents[2])


def test_cli_config_prints_the_effective_configuration_with_the_key_masked():
    res = _run(sys.executable, "-m", "liqbot", "config", env={**GOOD, "REDIS_URL": "redis://127.0.0.1:1/0"})
    assert res.returncode == 0, res.stderr
    assert "POOL_ADDRESSES_PROVIDER" in res.stdout
    assert KEY[2:] not in res.stdout + res.stderr


def test_cli_and_celery_exit_with_the_variable_name():
    res = _run(sys.executable, "-m", "liqbot", "config", env={**GOOD, "AT_RISK_HF": "abc"})
    assert res.returncode == 1
    assert "AT_RISK_HF" in res.stderr
    assert "Traceback" not in res.stderr
    res = _run(sys.executable, "-m", "celery", "-A", "liqbot", "worker", "-Q", "priority",
               env={**GOOD, "RPC_URL": "nope"})
    assert res.returncode != 0
    assert "RPC_URL: not an http(s) URL" in res.stderr


def test_rediss_urls_verify_the_certificate():
    code = "import celeryconfig, ssl; print(celeryconfig.broker_use_ssl['ssl_cert_reqs'] == ssl.CERT_REQUIRED)"
    res = _run(sys.executable, "-c", code, env={**GOOD, "REDIS_URL": "rediss://:pw@redis.example:6380/0"})
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == "True"
