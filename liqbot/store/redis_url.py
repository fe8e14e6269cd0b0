"""REDIS_URL: one Redis server (redis://, rediss://, unix://) or a Redis Sentinel group (sentinel://).

A Sentinel group is kombu's list of sentinels plus the master's name, in one string:

    sentinel://[[USER]:PASSWORD@]HOST[:PORT];sentinel://HOST[:PORT];...[/DB]?master_name=NAME[&sentinel_auth=true]

PASSWORD (and USER) is the data nodes' `requirepass` (master and replicas), as in kombu; write it once
(if several entries carry one, they must agree). The sentinels are asked without a password unless
`sentinel_auth=true`: then they are given the same one (their own `requirepass`). PORT defaults to 26379.
Pure parsing, no I/O: config validates with it, `store.redis.client` and celeryconfig build from it.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import parse_qsl, quote, unquote, urlsplit

SENTINEL_SCHEME = "sentinel://"
SENTINEL_PORT = 26379
SENTINEL_TIMEOUT_SECS = 1.0
SINGLE_SCHEMES = ("redis://", "rediss://", "unix://")
_QUERY = ("master_name", "sentinel_auth")
_TRUE, _FALSE = ("1", "true", "yes", "on"), ("0", "false", "no", "off")


@dataclass(frozen=True)
class SentinelUrl:
    sentinels: tuple[tuple[str, int], ...]
    master_name: str
    db: int = 0
    username: str | None = None
    password: str | None = None
    sentinel_auth: bool = False  # the sentinels want the same credentials as the data nodes

    def broker(self) -> tuple[str, dict]:
        """Celery's broker URL (kombu's sentinel transport) and the transport options it needs. Every
        entry carries the credentials and the database: kombu reads them from whichever entry it uses."""
        creds = f"{quote(self.username or '', safe='')}:{quote(self.password, safe='')}@" if self.password else ""
        url = ";".join(f"{SENTINEL_SCHEME}{creds}{_host(h)}:{p}/{self.db}" for h, p in self.sentinels)
        return url, {"master_name": self.master_name, "sentinel_kwargs": self.sentinel_kwargs()}

    def sentinel_kwargs(self) -> dict:
        """How to talk to the sentinels: short timeouts (a dead sentinel must not hold up finding the master;
        the next one is asked), and the credentials if they want them."""
        auth = {"username": self.username, "password": self.password} if self.sentinel_auth else {}
        return {"socket_timeout": SENTINEL_TIMEOUT_SECS, "socket_connect_timeout": SENTINEL_TIMEOUT_SECS,
                **{k: v for k, v in auth.items() if v}}


def is_sentinel(url: str) -> bool:
    return url.startswith(SENTINEL_SCHEME)


def check(url: str) -> str:
    """The URL if it is usable; a ValueError with a one-line reason otherwise."""
    if is_sentinel(url):
        parse_sentinel(url)
    elif not url.startswith(SINGLE_SCHEMES):
        raise ValueError("not a redis URL")
    return url


def parse_sentinel(url: str) -> SentinelUrl:
    entries = url.split(";")
    sentinels: list[tuple[str, int]] = []
    creds: set[tuple[str | None, str | None]] = set()
    paths: set[str] = set()
    queries: set[str] = set()
    for entry in entries:
        if not entry.startswith(SENTINEL_SCHEME):
            raise ValueError(f"every ';'-separated entry must start with {SENTINEL_SCHEME} (got {_no_creds(entry)!r})")
        parts = urlsplit(entry)
        try:
            host, port = parts.hostname, parts.port or SENTINEL_PORT
        except ValueError:
            raise ValueError(f"bad sentinel port in {_no_creds(entry)!r}") from None
        if not host:
            raise ValueError(f"no sentinel host in {_no_creds(entry)!r}")
        sentinels.append((host, port))
        if parts.password is not None or parts.username:
            creds.add((unquote(parts.username) if parts.username else None,
                       unquote(parts.password) if parts.password is not None else None))
        if parts.path not in ("", "/"):
            paths.add(parts.path)
        if parts.query:
            queries.add(parts.query)
    if len(creds) > 1:
        raise ValueError("the sentinel entries carry different passwords (write it once, on the first)")
    if len(paths) > 1 or len(queries) > 1:
        raise ValueError("the entries disagree on the database or ?master_name= (write them once, after the last sentinel)")
    if len(set(sentinels)) != len(sentinels):
        raise ValueError("a sentinel is listed twice")
    db = _db(paths.pop() if paths else "")
    query = dict(parse_qsl(queries.pop() if queries else "", keep_blank_values=True))
    unknown = sorted(set(query) - set(_QUERY))
    if unknown:
        raise ValueError(f"unknown parameter {unknown[0]!r} (known: {', '.join(_QUERY)})")
    master = query.get("master_name", "").strip()
    if not master:
        raise ValueError("a sentinel URL needs ?master_name=<the name the sentinels monitor>")
    auth = query.get("sentinel_auth", "false").strip().lower()
    if auth not in _TRUE + _FALSE:
        raise ValueError("sentinel_auth must be true or false")
    username, password = creds.pop() if creds else (None, None)
    if auth in _TRUE and not password:
        raise ValueError("sentinel_auth=true needs a password in the URL")
    return SentinelUrl(tuple(sentinels), master, db, username, password, auth in _TRUE)


def _db(path: str) -> int:
    raw = path.strip("/")
    if not raw:
        return 0
    if not raw.isdigit():
        raise ValueError(f"the database after the last sentinel must be a number (got {raw!r})")
    return int(raw)


def _host(host: str) -> str:
    return f"[{host}]" if ":" in host else host  # an IPv6 address


def _no_creds(entry: str) -> str:
    """An entry as shown in an error: without its password."""
    scheme, sep, rest = entry.partition("://")
    return f"{scheme}{sep}{rest.rpartition('@')[2]}" if sep else entry
