"""Each command loads only the settings it uses: nothing is required to load them, each entry point states
what it needs, and a missing one names the variable and the command. A market file of another shape is one
line naming the file and the missing field. (The real processes with a minimal environment:
tests/integration/test_command_settings.py.)"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from liqbot.cli import app
from liqbot.config import LIQUIDATOR_KEY, MarketFile, Settings, get_settings, load_settings
from liqbot.errors import ConfigError

KEY = "0x" + "ab" * 32
PROVIDER = "0x5FbDB2315678afecb367f032d93F642f64180aa3"
CHAIN = {"RPC_URL": "http://127.0.0.1:1", "WS_URL": "ws://127.0.0.1:1", "POOL_ADDRESSES_PROVIDER": PROVIDER}
KEY_VARS = "LIQUIDATOR_PRIVATE_KEY or LIQUIDATOR_KEY_FILE"


def _clear() -> None:
    from liqbot.runtime import runtime

    get_settings.cache_clear()
    runtime.cache_clear()


@pytest.fixture(autouse=True)
def bare_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    """No setting from the developer's environment; Redis nowhere (nothing here may need it); the default
    database would land in tmp_path."""
    for name in Settings.model_fields:
        monkeypatch.delenv(name.upper(), raising=False)
    monkeypatch.setenv("REDIS_URL", "redis://127.0.0.1:1/0")
    monkeypatch.chdir(tmp_path)
    _clear()
    yield
    _clear()


def _variables(err: BaseException | None) -> list[str]:
    assert isinstance(err, ConfigError), err
    return [line.split(":")[0] for line in str(err).splitlines()]


# --- what each command needs ---------------------------------------------------------------------------------


def test_nothing_is_required_to_load_the_settings():
    s = load_settings()
    assert (s.rpc_url, s.ws_url, s.pool_addresses_provider, s.liquidator_private_key, s.liquidator_key_file) == (None,) * 5
    assert s.require() is s


def test_require_names_each_missing_variable_and_the_command():
    s = load_settings(rpc_url="http://127.0.0.1:1")
    with pytest.raises(ConfigError) as err:
        s.require("rpc_url", "ws_url", LIQUIDATOR_KEY, command="liqbot thing")
    assert str(err.value).splitlines() == [
        "WS_URL: required by liqbot thing; expected a ws:// or wss:// URL of the same node",
        f"{KEY_VARS}: required by liqbot thing; expected a 0x-prefixed 32-byte hex private key, or a path to a file "
        "(mode 0600) holding it",
    ]


def test_producer_needs_the_node_and_the_market_but_no_key(monkeypatch: pytest.MonkeyPatch):
    result = CliRunner().invoke(app, ["producer"])
    assert _variables(result.exception) == ["RPC_URL", "WS_URL", "POOL_ADDRESSES_PROVIDER"]
    assert "required by liqbot producer" in str(result.exception)

    ran = []
    monkeypatch.setattr("liqbot.logs.setup_logging", lambda level: None)
    monkeypatch.setattr("liqbot.producer.listener.run_producer", ran.append)
    for k, v in CHAIN.items():
        monkeypatch.setenv(k, v)
    _clear()
    result = CliRunner().invoke(app, ["producer"])
    assert result.exit_code == 0, result.exception
    assert len(ran) == 1  # started without a key (and without touching the node: it is not there)


def test_contract_deploy_needs_the_node_the_market_and_the_key(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("WS_URL", CHAIN["WS_URL"])
    result = CliRunner().invoke(app, ["contract", "deploy", "--router", PROVIDER])
    assert _variables(result.exception) == ["RPC_URL", "POOL_ADDRESSES_PROVIDER", KEY_VARS]
    assert "required by liqbot contract deploy" in str(result.exception)


def test_celery_workers_need_the_node_the_market_and_the_key(monkeypatch: pytest.MonkeyPatch,
                                                             capsys: pytest.CaptureFixture[str]):
    from liqbot.celery import _check_chain

    with pytest.raises(SystemExit) as exited:
        _check_chain()
    assert exited.value.code == 2
    lines = capsys.readouterr().err.removeprefix("liqbot: ").splitlines()
    assert [line.split(":")[0] for line in lines] == ["RPC_URL", "POOL_ADDRESSES_PROVIDER", KEY_VARS]
    assert all("required by celery worker" in line for line in lines)

    for k in ("RPC_URL", "POOL_ADDRESSES_PROVIDER"):
        monkeypatch.setenv(k, CHAIN[k])
    monkeypatch.setenv("LIQUIDATOR_PRIVATE_KEY", KEY)
    _clear()
    _check_chain()  # no LIQUIDATOR_CONTRACT: nothing to check on the chain, the worker starts


def test_a_worker_key_file_is_read_at_start_up_a_read_only_command_never_reads_it(monkeypatch: pytest.MonkeyPatch,
                                                                                  tmp_path: Path):
    key_file = tmp_path / "key"
    key_file.write_text(KEY)
    key_file.chmod(0o644)
    monkeypatch.setenv("LIQUIDATOR_KEY_FILE", str(key_file))
    s = load_settings()  # what `status` or `breaker status` load
    with pytest.raises(ConfigError, match=r"LIQUIDATOR_KEY_FILE: .* has mode 0644; expected 0600"):
        s.require(LIQUIDATOR_KEY, command="celery worker")


def test_config_shows_what_is_set_and_unset_for_the_rest():
    result = CliRunner().invoke(app, ["config"])
    assert result.exit_code == 0, result.exception
    cells = [line.split(None, 1) for line in result.output.splitlines()]
    rows = {row[0]: row[1].strip() for row in cells if len(row) == 2}
    for var in ("RPC_URL", "WS_URL", "POOL_ADDRESSES_PROVIDER", "LIQUIDATOR_PRIVATE_KEY", "LIQUIDATOR_KEY_FILE", "MARKET_FILE"):
        assert rows[var] == "unset"
    assert rows["REDIS_URL"] == "redis://127.0.0.1:1/0"


def test_the_runtime_opens_the_node_and_the_database_on_first_use(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    from liqbot.runtime import runtime

    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{tmp_path / 'liqbot.sqlite'}")
    _clear()
    rt = runtime()
    _ = rt.state, rt.breaker  # what `breaker status` uses: Redis only (not contacted until a command)
    assert not (tmp_path / "liqbot.sqlite").exists()
    with pytest.raises(ConfigError, match=r"^RPC_URL: not set; expected an http"):
        _ = rt.rpc
    with pytest.raises(ConfigError, match=r"^POOL_ADDRESSES_PROVIDER: not set"):
        _ = rt.market


def test_a_database_url_that_cannot_be_opened_is_one_line(monkeypatch: pytest.MonkeyPatch):
    from liqbot.runtime import runtime

    monkeypatch.setenv("DATABASE_URL", "nosuchdb://user:hunter2@host/db")
    _clear()
    with pytest.raises(ConfigError) as err:
        _ = runtime().sessions
    text = str(err.value)
    assert text.startswith("DATABASE_URL: cannot open nosuchdb://user:****@host/db: ")
    assert "\n" not in text
    assert "hunter2" not in text


# --- market files of another shape ---------------------------------------------------------------------------

MARKET = {"rpc_url": "http://127.0.0.1:9", "ws_url": "ws://127.0.0.1:9", "deploy_block": 3,
          "contracts": {"PoolAddressesProvider": PROVIDER}, "accounts": {"liquidator": {"private_key": KEY}}}


def _without(path: str) -> dict:
    market = json.loads(json.dumps(MARKET))
    *parents, last = path.split(".")
    node = market
    for key in parents:
        node = node[key]
    del node[last]
    return market


def _write(tmp_path: Path, content: object) -> Path:
    path = tmp_path / "m.json"
    path.write_text(content if isinstance(content, str) else json.dumps(content))
    return path


@pytest.mark.parametrize("field", ["rpc_url", "ws_url", "contracts.PoolAddressesProvider", "contracts",
                                   "accounts.liquidator.private_key", "accounts.liquidator", "accounts"])
def test_a_market_file_missing_a_field_is_one_line_naming_the_file_and_the_field(tmp_path: Path, field: str):
    path = _write(tmp_path, _without(field))
    with pytest.raises(ConfigError) as err:
        load_settings(market_file=str(path))
    text = str(err.value)
    assert "\n" not in text
    expected_field = {"contracts": "contracts.PoolAddressesProvider", "accounts.liquidator": "accounts.liquidator.private_key",
                      "accounts": "accounts.liquidator.private_key"}.get(field, field)
    assert text == f'MARKET_FILE {path}: no "{expected_field}" (expected a market file written by liqbot devnet up)'


@pytest.mark.parametrize(("content", "says"), [
    ("not json at all", "not JSON"),
    ("", "not JSON"),
    ([MARKET], "a JSON list, not an object"),
    ("42", "a JSON int, not an object"),
    (b"\xff\xfe\x00garbage", "not JSON"),
])
def test_a_file_that_is_not_a_market_file_is_one_line(tmp_path: Path, content: object, says: str):
    path = tmp_path / "m.json"
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        _write(tmp_path, content)
    with pytest.raises(ConfigError) as err:
        load_settings(market_file=str(path))
    assert str(err.value).startswith(f"MARKET_FILE {path}: {says}")
    assert "\n" not in str(err.value)


def test_a_missing_market_file_or_a_directory_is_one_line(tmp_path: Path):
    with pytest.raises(ConfigError, match=f"^MARKET_FILE {tmp_path}/nope.json: not found"):
        load_settings(market_file=str(tmp_path / "nope.json"))
    with pytest.raises(ConfigError, match=f"^MARKET_FILE {tmp_path}: cannot read it"):
        load_settings(market_file=str(tmp_path))


def test_the_environment_fills_what_the_market_file_lacks(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    path = _write(tmp_path, _without("ws_url") | {"accounts": {}})
    monkeypatch.setenv("WS_URL", "ws://elsewhere:1")
    monkeypatch.setenv("LIQUIDATOR_KEY_FILE", str(tmp_path / "not-read-here"))
    s = load_settings(market_file=str(path))
    assert (s.rpc_url, s.ws_url, s.pool_addresses_provider, s.start_block) == ("http://127.0.0.1:9", "ws://elsewhere:1",
                                                                                PROVIDER, 3)


def test_the_market_file_reader(tmp_path: Path):
    mf = MarketFile.read(_write(tmp_path, MARKET))
    assert mf.get("contracts", "PoolAddressesProvider") == PROVIDER
    assert mf.get("contracts", "SwapRouter", default=None) is None
    assert mf.get("rpc_url", "deeper", default="x") == "x"  # a string has no fields
    with pytest.raises(ConfigError, match=r'^market file .*m\.json: no "contracts\.SwapRouter" \(expected'):
        mf.get("contracts", "SwapRouter")


def test_devnet_commands_read_market_files_the_same_way(tmp_path: Path):
    from liqbot.devnet.market import Market

    reserve = {"symbol": "WETH", "address": PROVIDER, "decimals": 18, "aggregator": PROVIDER, "a_token": PROVIDER,
               "variable_debt_token": PROVIDER, "stable_debt_token": PROVIDER}
    full = {**MARKET, "chain_id": 31337, "reserves": {"WETH": reserve},
            "accounts": {"liquidator": {"role": "liquidator", "address": PROVIDER, "private_key": KEY}},
            "from_a_newer_version": True}
    market = Market.load(_write(tmp_path, full))
    assert market.reserve("weth").decimals == 18
    assert market.account("liquidator").private_key == KEY

    for broken, says in ((_drop(full, "chain_id"), 'no "chain_id"'), (_drop(full, "reserves"), 'no "reserves"'),
                         (_drop_reserve(full, "aggregator"), 'no "reserves.WETH.aggregator"'),
                         ({**full, "reserves": []}, '"reserves" is not an object')):
        path = _write(tmp_path, broken)
        with pytest.raises(ConfigError) as err:
            Market.load(path)
        assert str(err.value) == f"market file {path}: {says} (expected a market file written by liqbot devnet up)"

    result = CliRunner().invoke(app, ["devnet", "price", "WETH", "--pct", "-1", "--market", str(tmp_path / "nope.json")])
    assert isinstance(result.exception, ConfigError)
    assert str(result.exception).startswith(f"market file {tmp_path}/nope.json: not found")


def _drop(market: dict, key: str) -> dict:
    return {k: v for k, v in market.items() if k != key}


def _drop_reserve(market: dict, key: str) -> dict:
    return {**market, "reserves": {"WETH": {k: v for k, v in market["reserves"]["WETH"].items() if k != key}}}


def test_contract_deploy_records_into_a_market_file_or_says_what_it_lacks(tmp_path: Path):
    from liqbot.cli.contract import _record

    path = _write(tmp_path, MARKET)
    _record(path, "FlashLiquidator", PROVIDER)
    assert json.loads(path.read_text())["contracts"] == {"PoolAddressesProvider": PROVIDER, "FlashLiquidator": PROVIDER}
    assert json.loads(path.read_text())["rpc_url"] == MARKET["rpc_url"]
    _write(tmp_path, _without("contracts"))
    with pytest.raises(ConfigError, match=r'^MARKET_FILE .*m\.json: no "contracts"'):
        _record(path, "FlashLiquidator", PROVIDER)
