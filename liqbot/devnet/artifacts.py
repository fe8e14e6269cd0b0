"""Contract artifacts: Aave v3.0's from `@aave/core-v3`, ours compiled once with solc-js (v3.6: see v36.py).

Everything comes from `node_modules` (installed by `make setup`); nothing is downloaded here.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import sys
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from liqbot.devnet.solc import compile_output
from liqbot.errors import DevnetError

_CONTRACTS_DIR = Path(__file__).parent / "contracts"
_REPO_ROOT = Path(__file__).resolve().parents[2]
# Our Solidity: devnet-only helpers, then what the bot deploys on real markets.
_OUR_DIRS = (_CONTRACTS_DIR, Path(__file__).parents[1] / "contracts")
# One setting for all of ours; shanghai (PUSH0, no cancun opcodes) runs on every chain Aave v3 is on.
_OUR_SETTINGS = {"optimizer": {"enabled": True, "runs": 200}, "evmVersion": "shanghai"}


@cache
def node_modules() -> Path:
    """The node_modules that holds anvil and the Aave artifacts."""
    explicit = os.environ.get("LIQBOT_NODE_MODULES")
    candidates = [Path(explicit)] if explicit else [Path.cwd() / "node_modules", _REPO_ROOT / "node_modules"]
    for c in candidates:
        if (c / "@aave" / "core-v3").is_dir():
            return c
    raise DevnetError(
        f"node_modules with @aave/core-v3 not found (looked in {', '.join(map(str, candidates))}); "
        "run `make setup` (npm ci) first"
    )


def anvil_binary() -> Path:
    """The platform's anvil from the pinned `@foundry-rs/anvil` (shipped in its optional dependency)."""
    arch = {"x86_64": "amd64", "amd64": "amd64", "aarch64": "arm64", "arm64": "arm64"}.get(platform.machine().lower(), "amd64")
    path = node_modules() / "@foundry-rs" / f"anvil-{sys.platform.replace('32', '')}-{arch}" / "bin" / "anvil"
    if not path.is_file():
        raise DevnetError(f"anvil not found at {path}; run `make setup` (npm ci) first")
    return path


@dataclass(frozen=True)
class Artifact:
    name: str
    abi: list
    bytecode: str  # hex without 0x, may still hold link placeholders
    link_references: dict
    deployed_bytecode: str = ""  # runtime code, hex without 0x (filled for ours)

    @property
    def deployed_size(self) -> int:
        """Runtime code size in bytes (EIP-170 caps it at 24,576)."""
        return len(self.deployed_bytecode) // 2

    def linked(self, libraries: dict[str, str]) -> str:
        """Splice library addresses into the bytecode at the artifact's link offsets."""
        code = self.bytecode
        for _source, libs in self.link_references.items():
            for lib, refs in libs.items():
                if lib not in libraries:
                    raise DevnetError(f"{self.name} needs library {lib}, which is not deployed yet")
                addr = libraries[lib].lower().removeprefix("0x")
                for ref in refs:
                    start = ref["start"] * 2
                    code = code[:start] + addr + code[start + ref["length"] * 2 :]
        return "0x" + code


@cache
def _aave_index() -> dict[str, Path]:
    root = node_modules() / "@aave" / "core-v3" / "artifacts" / "contracts"
    return {p.stem: p for p in root.rglob("*.json") if not p.name.endswith(".dbg.json")}


@cache
def aave(name: str) -> Artifact:
    try:
        path = _aave_index()[name]
    except KeyError:
        raise DevnetError(f"no artifact named {name} in @aave/core-v3") from None
    data = json.loads(path.read_text())
    return Artifact(name, data["abi"], data["bytecode"].removeprefix("0x"), data.get("linkReferences", {}))


def cache_dir() -> Path:
    return Path(os.environ.get("LIQBOT_CACHE_DIR", _REPO_ROOT / ".cache"))


@cache
def ours(name: str) -> Artifact:
    """Compile our `<name>.sol` (devnet/contracts or liqbot/contracts) with the pinned solc-js; imports
    resolve from its folder, then node_modules. Cached by the source, compiler and settings, and checked
    against the imported files' hashes, so a change to any of them recompiles."""
    folder = next((d for d in _OUR_DIRS if (d / f"{name}.sol").is_file()), None)
    if folder is None:
        raise DevnetError(f"no contract {name}.sol in {' or '.join(map(str, _OUR_DIRS))}")
    roots = (folder, node_modules())
    unit = f"{name}.sol"
    solc = node_modules() / "solc"
    spec = json.dumps({"source": _sha256(folder / unit), "solc": json.loads((solc / "package.json").read_text())["version"],
                       "settings": _OUR_SETTINGS}, sort_keys=True)
    cached = cache_dir() / f"{name}-{hashlib.sha256(spec.encode()).hexdigest()[:16]}.json"
    data = json.loads(cached.read_text()) if cached.is_file() else None
    if data is None or any(_sha256(_find(u, roots)) != h for u, h in data.get("imports", {}).items()):
        selection = {unit: {name: ["abi", "evm.bytecode.object", "evm.deployedBytecode.object"]}}
        out = compile_output(solc, roots, [unit], {**_OUR_SETTINGS, "outputSelection": selection})
        c = out["contracts"][unit][name]
        data = {"abi": c["abi"], "bytecode": c["evm"]["bytecode"]["object"],
                "deployed_bytecode": c["evm"]["deployedBytecode"]["object"],
                "imports": {u: _sha256(_find(u, roots)) for u in out["sources"] if u != unit}}
        cached.parent.mkdir(parents=True, exist_ok=True)
        tmp = cached.with_suffix(f".{os.getpid()}.tmp")  # several processes may compile at once
        tmp.write_text(json.dumps(data))
        tmp.replace(cached)
    return Artifact(name, data["abi"], data["bytecode"], {}, data["deployed_bytecode"])


def _find(unit: str, roots: tuple[Path, ...]) -> Path | None:
    """Where solc's import callback found `unit` (the first root that holds it)."""
    return next((r / unit for r in roots if (r / unit).is_file()), None)


def _sha256(path: Path | None) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest() if path is not None else ""


@cache
def uniswap(name: str) -> Artifact:
    """Uniswap v3 from the pinned npm packages (core: factory, pool; periphery: router, quoter, position
    manager). Their pool bytecode hashes to the periphery's POOL_INIT_CODE_HASH, so nothing is recompiled."""
    for package in ("v3-core", "v3-periphery"):
        root = node_modules() / "@uniswap" / package / "artifacts" / "contracts"
        path = next((p for p in root.rglob(f"{name}.json")), None)
        if path is not None:
            data = json.loads(path.read_text())
            return Artifact(name, data["abi"], data["bytecode"].removeprefix("0x"), data.get("linkReferences", {}))
    raise DevnetError(f"no artifact named {name} in @uniswap/v3-core or v3-periphery; run `make setup` (npm ci)")
