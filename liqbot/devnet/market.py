"""The devnet's market description: what `devnet up` deploys and what it writes to the market file."""

from __future__ import annotations

import json
from dataclasses import MISSING, asdict, dataclass, field, fields
from pathlib import Path

from liqbot.config import MARKET_FILE_EXPECTED, MarketFile
from liqbot.errors import ConfigError, DevnetError

RAY = 10**27


@dataclass(frozen=True)
class ReserveSpec:
    """A reserve to list; risk parameters in basis points, price in USD with 8 decimals."""

    symbol: str
    decimals: int
    price: int
    ltv: int
    liquidation_threshold: int
    liquidation_bonus: int
    reserve_factor: int
    protocol_fee: int
    volatile: bool


# Close to Aave's mainnet parameters for these assets (v3 Ethereum market, 2024).
DEFAULT_RESERVES: tuple[ReserveSpec, ...] = (
    ReserveSpec("WETH", 18, 2_000 * 10**8, 8000, 8250, 10500, 1500, 1000, True),
    ReserveSpec("WBTC", 8, 40_000 * 10**8, 7000, 7500, 10650, 2000, 1000, True),
    ReserveSpec("USDC", 6, 1 * 10**8, 7700, 8000, 10450, 1000, 1000, False),
    ReserveSpec("DAI", 18, 1 * 10**8, 7500, 8000, 10500, 1000, 1000, False),
)

# DefaultReserveInterestRateStrategy arguments after `provider`, in ray.
RATE_STRATEGIES = {
    True: (45 * RAY // 100, 0, 4 * RAY // 100, 3 * RAY, 0, 0, 0, 0, 20 * RAY // 100),
    False: (90 * RAY // 100, 0, 4 * RAY // 100, 60 * RAY // 100, 0, 0, 0, 0, 20 * RAY // 100),
}


@dataclass
class Account:
    role: str
    address: str
    private_key: str


@dataclass
class Reserve:
    symbol: str
    address: str
    decimals: int
    aggregator: str
    a_token: str
    variable_debt_token: str
    stable_debt_token: str  # the zero address on v3.2+, which has no stable debt


@dataclass
class Market:
    """Everything a test, a seed run or the bot needs to find the devnet again."""

    chain_id: int
    rpc_url: str
    ws_url: str
    deploy_block: int
    contracts: dict[str, str]
    reserves: dict[str, Reserve]
    accounts: dict[str, Account]
    anvil_pid: int | None = None
    deployed_in_secs: float | None = None
    libraries: dict[str, str] = field(default_factory=dict)
    aave_version: str = "3.0"  # which Aave `devnet up --aave` deployed (files written before it are v3.0)
    # Uniswap v3 pools, "SYM0/SYM1" in reserve order -> address; the DEX contracts are in `contracts`.
    # Empty in files written before the devnet had a DEX.
    pools: dict[str, str] = field(default_factory=dict)

    @property
    def pool(self) -> str:
        return self.contracts["Pool"]

    @property
    def provider(self) -> str:
        return self.contracts["PoolAddressesProvider"]

    def reserve(self, symbol: str) -> Reserve:
        key = symbol.upper()
        if key not in self.reserves:
            raise DevnetError(f"unknown asset {symbol!r}; this market has {', '.join(self.reserves)}")
        return self.reserves[key]

    def account(self, role: str) -> Account:
        return self.accounts[role]

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2)

    def save(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(self.to_json())
        tmp.replace(path)

    @classmethod
    def load(cls, path: Path) -> Market:
        """A ConfigError naming the file and the missing field (one line) if it is not a market file; fields
        it does not know (a newer version's) are ignored."""
        mf = MarketFile.read(path)
        data = _fields(cls, mf)
        data["reserves"] = {k: Reserve(**_fields(Reserve, mf, "reserves", k)) for k in _object(mf, "reserves")}
        data["accounts"] = {k: Account(**_fields(Account, mf, "accounts", k)) for k in _object(mf, "accounts")}
        return cls(**data)


def _object(mf: MarketFile, *keys: str) -> dict:
    value = mf.get(*keys)
    if not isinstance(value, dict):
        raise ConfigError(f'{mf.label} {mf.path}: "{".".join(keys)}" is not an object ({MARKET_FILE_EXPECTED})')
    return value


def _fields(kind: type, mf: MarketFile, *keys: str) -> dict:
    """The dataclass `kind`'s fields from the object at `keys`: each required one there, optional ones if there."""
    obj = _object(mf, *keys) if keys else mf.data
    out = {}
    for f in fields(kind):
        if f.name in obj:
            out[f.name] = obj[f.name]
        elif f.default is MISSING and f.default_factory is MISSING:
            raise mf.missing(".".join((*keys, f.name)))
    return out
