"""Aave v3.6.0 for the devnet: compiled once from `@aave-dao/aave-v3-origin` with the pinned solc-js.

No npm package ships v3.6 bytecode, so the market's contracts are compiled from the package's sources
the first time they are needed (about 15-30 s) and kept under `.cache/`, keyed by everything that
changes the output.
"""

from __future__ import annotations

import hashlib
import json
from functools import cache
from pathlib import Path

from eth_abi import encode

from liqbot.chain.abi import Function
from liqbot.devnet import artifacts
from liqbot.devnet.artifacts import Artifact
from liqbot.devnet.solc import compile_standard
from liqbot.errors import DevnetError

PACKAGE = "@aave-dao/aave-v3-origin"
VERSION = "3.6.0"
SOLC = "0.8.27"
_SRC = f"{PACKAGE}/src/contracts/"

# name used by the deploy -> (source under src/contracts, contract). The instances carry the revisions.
CONTRACTS = {
    "PoolAddressesProvider": ("protocol/configuration/PoolAddressesProvider.sol", "PoolAddressesProvider"),
    "ACLManager": ("protocol/configuration/ACLManager.sol", "ACLManager"),
    "Pool": ("instances/PoolInstance.sol", "PoolInstance"),
    "PoolConfigurator": ("instances/PoolConfiguratorInstance.sol", "PoolConfiguratorInstance"),
    "AaveOracle": ("misc/AaveOracle.sol", "AaveOracle"),
    "AaveProtocolDataProvider": ("helpers/AaveProtocolDataProvider.sol", "AaveProtocolDataProvider"),
    "AToken": ("instances/ATokenInstance.sol", "ATokenInstance"),
    "VariableDebtToken": ("instances/VariableDebtTokenInstance.sol", "VariableDebtTokenInstance"),
    "DefaultReserveInterestRateStrategyV2": ("misc/DefaultReserveInterestRateStrategyV2.sol",
                                             "DefaultReserveInterestRateStrategyV2"),
    "MintableERC20": ("mocks/tokens/MintableERC20.sol", "MintableERC20"),
    **{lib: (f"protocol/libraries/logic/{lib}.sol", lib) for lib in
       ("SupplyLogic", "BorrowLogic", "LiquidationLogic", "PoolLogic", "FlashLoanLogic", "ConfiguratorLogic")},
}

# aave-v3-origin's foundry settings; npm's OpenZeppelin has no `contracts/` folder, hence the remapping.
SETTINGS = {
    "optimizer": {"enabled": True, "runs": 200},
    "evmVersion": "shanghai",
    "metadata": {"bytecodeHash": "none"},
    "remappings": ["openzeppelin-contracts/contracts/=@openzeppelin/contracts/",
                   "solidity-utils/=@bgd-labs/solidity-utils/src/"],
}

# InitReserveInput of v3.4+: no stable debt token, and the rate data rides along (one strategy per Pool).
INIT_RESERVES = Function("initReserves((address,address,address,string,string,string,string,bytes,bytes)[])")


def rate_data(ray_params: tuple[int, ...]) -> bytes:
    """DefaultReserveInterestRateStrategyV2's InterestRateData (bps) from the v3.0 strategy's ray arguments
    (optimalUsageRatio, baseVariableBorrowRate, variableRateSlope1, variableRateSlope2, ...)."""
    bps = [v * 10_000 // 10**27 for v in ray_params[:4]]
    return encode(["(uint16,uint32,uint32,uint32)"], [tuple(bps)])


def _cache_key() -> str:
    spec = json.dumps({"package": PACKAGE, "version": VERSION, "solc": SOLC, "contracts": CONTRACTS,
                       "settings": SETTINGS}, sort_keys=True)
    return hashlib.sha256(spec.encode()).hexdigest()[:16]


def _check_installed() -> None:
    nm = artifacts.node_modules()
    for pkg, want in ((PACKAGE, VERSION), ("solc", SOLC)):
        manifest = nm / pkg / "package.json"
        got = json.loads(manifest.read_text())["version"] if manifest.is_file() else None
        if got != want:
            raise DevnetError(f"Aave v3.6 needs npm {pkg}@{want} (found {got or 'none'}); run `make setup` (npm ci)")


def cached_path() -> Path:
    return artifacts.cache_dir() / f"aave-v{VERSION}-{_cache_key()}.json"


def compile_all() -> dict[str, dict]:
    """Compile (or read back) every contract the devnet deploys; returns name -> abi/bytecode/links."""
    path = cached_path()
    if path.is_file():
        return json.loads(path.read_text())
    _check_installed()
    nm = artifacts.node_modules()
    sources = sorted({_SRC + src for src, _ in CONTRACTS.values()})
    selection: dict[str, dict] = {}
    for src, contract in CONTRACTS.values():
        selection.setdefault(_SRC + src, {})[contract] = ["abi", "evm.bytecode.object", "evm.bytecode.linkReferences"]
    out = compile_standard(nm / "solc", nm, sources, {**SETTINGS, "outputSelection": selection})
    result = {}
    for name, (src, contract) in CONTRACTS.items():
        c = out[_SRC + src][contract]
        result[name] = {"abi": c["abi"], "bytecode": c["evm"]["bytecode"]["object"],
                        "linkReferences": c["evm"]["bytecode"]["linkReferences"]}
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(result))
    tmp.replace(path)
    return result


@cache
def _all() -> dict[str, dict]:
    return compile_all()


def artifact(name: str) -> Artifact:
    try:
        data = _all()[name]
    except KeyError:
        raise DevnetError(f"no v3.6 artifact named {name}") from None
    return Artifact(name, data["abi"], data["bytecode"], data["linkReferences"])
