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

from liqbot.devnet.solc import compile_standard
from liqbot.errors import DevnetError

_CONTRACTS_DIR = Path(__file__).parent / "contracts"
_REPO_ROOT = Path(__file__).resolve().parents[2]


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
    """Compile `contracts/<name>.sol` with the pinned solc-js, caching by source hash."""
    source = _CONTRACTS_DIR / f"{name}.sol"
    digest = hashlib.sha256(source.read_bytes()).hexdigest()[:16]
    cached = cache_dir() / f"{name}-{digest}.json"
    if not cached.is_file():
        selection = {source.name: {name: ["abi", "evm.bytecode.object"]}}
        out = compile_standard(node_modules() / "solc", _CONTRACTS_DIR, [source.name],
                               {"optimizer": {"enabled": True, "runs": 200}, "outputSelection": selection})
        c = out[source.name][name]
        cached.parent.mkdir(parents=True, exist_ok=True)
        cached.write_text(json.dumps({"abi": c["abi"], "bytecode": c["evm"]["bytecode"]["object"]}))
    data = json.loads(cached.read_text())
    return Artifact(name, data["abi"], data["bytecode"], {})
