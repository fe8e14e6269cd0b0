"""Compile Solidity with the pinned solc-js (npm `solc`) through node: no compiler download needed.

Sources are read from node_modules on demand by solc's import callback, so only what the entry
files import is compiled.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Sequence
from pathlib import Path

from liqbot.errors import DevnetError

# Standard-JSON in on stdin, out on stdout; imports resolve under the first of `roots` that holds them
# (node_modules, a contracts folder, or both).
_DRIVER = r"""
const fs = require('fs'), path = require('path');
const [solcDir, rootsJson] = process.argv.slice(1);
const solc = require(solcDir), roots = JSON.parse(rootsJson);
const input = fs.readFileSync(0, 'utf8');
function findImports(p) {
  for (const root of roots) {
    try { return {contents: fs.readFileSync(path.join(root, p), 'utf8')}; } catch (e) {}
  }
  return {error: 'not found: ' + p};
}
process.stdout.write(JSON.stringify({version: solc.version(), output: JSON.parse(solc.compile(input, {import: findImports}))}));
"""


def compile_standard(solc_dir: Path, root: Path | Sequence[Path], sources: list[str], settings: dict,
                     timeout: float = 600) -> dict:
    """Compile `sources` (unit names under `root`) and return solc's `contracts` output."""
    return compile_output(solc_dir, root, sources, settings, timeout)["contracts"]


def compile_output(solc_dir: Path, root: Path | Sequence[Path], sources: list[str], settings: dict,
                   timeout: float = 600) -> dict:
    """solc's whole standard-JSON output (`contracts`, and `sources`: every unit compiled, imports included).
    Entry sources are read from the first root; imports from the first root that holds them."""
    roots = [root] if isinstance(root, Path) else list(root)
    standard = {"language": "Solidity", "sources": {s: {"content": (roots[0] / s).read_text()} for s in sources},
                "settings": settings}
    try:
        proc = subprocess.run(["node", "-e", _DRIVER, str(solc_dir.resolve()), json.dumps([str(r.resolve()) for r in roots])],
                              input=json.dumps(standard), capture_output=True, text=True, timeout=timeout, check=False)
    except FileNotFoundError:
        raise DevnetError("node not found: solc-js needs Node.js (run `make setup`)") from None
    if proc.returncode != 0:
        raise DevnetError(f"solc-js failed: {proc.stderr.strip()[-2000:]}")
    result = json.loads(proc.stdout)
    errors = [e for e in result["output"].get("errors", []) if e.get("severity") == "error"]
    if errors:
        raise DevnetError("solc: " + "\n".join(e.get("formattedMessage", e.get("message", "")) for e in errors[:5]))
    return result["output"]
