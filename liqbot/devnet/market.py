"""The devnet's market description: what `devnet up` deploys and what it writes to the market file."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

from liqbot.errors import DevnetError

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
        try:
            data = json.loads(Path(path).read_text())
        except FileNotFoundError:
            raise DevnetError(f"market file {path} not found; start a devnet with `liqbot devnet up`") from None
        except json.JSONDecodeError as exc:
            raise DevnetError(f"market file {path} is not valid JSON: {exc}") from None
        data["reserves"] = {k: Reserve(**v) for k, v in data["reserves"].items()}
        data["accounts"] = {k: Account(**v) for k, v in data["accounts"].items()}
        return cls(**data)
