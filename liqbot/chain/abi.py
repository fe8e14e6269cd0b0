"""Minimal ABI encoding from human-readable signatures.

The bot talks to a handful of Aave functions and events; writing them as signatures keeps
their types next to the code that uses them and avoids shipping JSON ABIs with the bot.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from eth_abi import decode, encode
from eth_abi.exceptions import DecodingError
from eth_utils import keccak, to_checksum_address


def _split_types(inner: str) -> list[str]:
    """Split 'address,(uint8,bool)[],uint256' at top-level commas."""
    out, depth, cur = [], 0, ""
    for ch in inner:
        if ch == "," and depth == 0:
            out.append(cur)
            cur = ""
            continue
        depth += ch == "("
        depth -= ch == ")"
        cur += ch
    if cur:
        out.append(cur)
    return out


def _parse(signature: str) -> tuple[str, list[str]]:
    name, _, rest = signature.partition("(")
    return name.strip(), _split_types(rest[:-1].replace(" ", ""))


def _checksum(value: Any) -> Any:
    """eth_abi decodes addresses in lower case; liqbot keeps every address checksummed."""
    if isinstance(value, str) and len(value) == 42 and value.startswith("0x"):
        return to_checksum_address(value)
    if isinstance(value, tuple | list):
        return type(value)(_checksum(v) for v in value)
    return value


@dataclass(frozen=True)
class Function:
    """A contract function: `Function("balanceOf(address)", "uint256")`."""

    signature: str
    returns: str = ""
    name: str = field(init=False)
    inputs: tuple[str, ...] = field(init=False)
    outputs: tuple[str, ...] = field(init=False)
    selector: bytes = field(init=False)

    def __post_init__(self) -> None:
        name, inputs = _parse(self.signature)
        canonical = f"{name}({','.join(inputs)})"
        object.__setattr__(self, "name", name)
        object.__setattr__(self, "inputs", tuple(inputs))
        object.__setattr__(self, "outputs", tuple(_split_types(self.returns.replace(" ", ""))))
        object.__setattr__(self, "selector", keccak(text=canonical)[:4])

    def calldata(self, *args: Any) -> str:
        return "0x" + (self.selector + encode(list(self.inputs), list(args))).hex()

    def decode(self, result: str | bytes) -> Any:
        raw = bytes.fromhex(result[2:]) if isinstance(result, str) else result
        values = _checksum(decode(list(self.outputs), raw))
        return values[0] if len(values) == 1 else values


@dataclass(frozen=True)
class Event:
    """An event: indexed arguments are marked `indexed`, e.g. `Supply(address indexed reserve, ...)`."""

    signature: str
    name: str = field(init=False)
    args: tuple[tuple[str, str, bool], ...] = field(init=False)
    topic0: str = field(init=False)

    def __post_init__(self) -> None:
        name, _ = _parse(self.signature)
        args = []
        for i, p in enumerate(_split_types(self.signature.partition("(")[2][:-1])):
            words = p.split()
            typ, indexed = words[0], "indexed" in words[1:]
            argname = words[-1] if len(words) > 1 and words[-1] != "indexed" else f"arg{i}"
            args.append((typ, argname, indexed))
        canonical = f"{name}({','.join(a[0] for a in args)})"
        object.__setattr__(self, "name", name)
        object.__setattr__(self, "args", tuple(args))
        object.__setattr__(self, "topic0", "0x" + keccak(text=canonical).hex())

    def decode(self, log: dict) -> dict[str, Any]:
        """Decode a JSON-RPC log object into {arg name: value}; raises ValueError if malformed."""
        try:
            return self._decode(log)
        except (DecodingError, TypeError, AttributeError) as exc:
            raise ValueError(f"log is not a well-formed {self.name}: {exc}") from exc

    def _decode(self, log: dict) -> dict[str, Any]:
        topics = log.get("topics") or []
        indexed = [a for a in self.args if a[2]]
        if not topics or topics[0].lower() != self.topic0 or len(topics) != 1 + len(indexed):
            raise ValueError(f"log is not a well-formed {self.name}")
        out: dict[str, Any] = {}
        for (typ, argname, _), topic in zip(indexed, topics[1:], strict=True):
            (out[argname],) = _checksum(decode([typ], bytes.fromhex(topic[2:])))
        plain = [a for a in self.args if not a[2]]
        data = log.get("data") or "0x"
        values = _checksum(decode([a[0] for a in plain], bytes.fromhex(data[2:])))
        for (_, argname, _), value in zip(plain, values, strict=True):
            out[argname] = value
        return out
