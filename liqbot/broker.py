"""kombu's Redis transport, made to survive a message it cannot decode (a poison message).

kombu's Redis channel pops a list item (BRPOP; RPOP for `basic_get`) and decodes its JSON envelope
before anything downstream can catch an error. One item that is not an envelope (a stray client's
LPUSH, a truncated write) is already gone from the list when the decode fails, and the failure
stops the consumer: bad JSON or bytes that are not UTF-8 end the worker process ("Unrecoverable
error: JSONDecodeError"), an object without the envelope's fields (`{}`) restarts its connection to
the broker. One such item on `priority` stops the liquidation lane. Upstream knows the family
(celery/celery#4308, "Worker dies if unable to decode a message", open); nothing handles it at the
transport level.

Here the two methods that decode a popped item, `_brpop_read` and `_get`, are kombu 5.7's own with
one change: an item that is not a deliverable envelope (see `decode_envelope`) is logged, pushed onto
a dead-letter list in Redis (`deadletter_key`, capped at `deadletter_max` entries) and skipped as
if nothing had arrived (`Empty`: the BRPOP is sent again on the next poll). Broadcasts on pub/sub
(Celery's remote control, the pidbox) get the same check before delivery (kombu itself already skips
one that is not JSON). A well-formed envelope whose task body is garbage is Celery's to handle: it
rejects a body it cannot decode and keeps consuming; a body of the wrong shape would still end the
worker, which liqbot.consumer prevents.

Not covered: JSON nested so deep that parsing it overflows the C stack (see MAX_BRACKETS) arriving
on pub/sub, where kombu parses before this module sees it; and compressed bodies (liqbot sends none).
The ACL in docs/redis-acl.conf is what keeps strangers from writing there at all.

Use it with Celery's `broker_transport = transport_for(broker_url)`.
"""

from __future__ import annotations

import base64
import json
import logging
import ssl
import time
from queue import Empty
from urllib.parse import urlsplit

import redis
from kombu.connection import resolve_aliases
from kombu.transport import redis as kredis
from kombu.transport import virtual
from kombu.utils.encoding import bytes_to_str
from kombu.utils.json import dumps, loads

log = logging.getLogger(__name__)

DEADLETTER_KEY = "liqbot:deadletter"  # celeryconfig sets `<REDIS_PREFIX>:deadletter` (transport option `deadletter_key`)
DEADLETTER_MAX = 10_000  # newest entries kept
KEPT_BYTES = 1 << 20  # of each dead letter's payload; the rest is cut (`truncated`), its size kept
SHOWN_BYTES = 80  # of a poison message, in the log line
# JSON nested deeper than the C stack allows crashes the interpreter (SIGSEGV, nothing to catch): py_ecc,
# imported with web3, raises the recursion limit to 100,000, and `[` * 100,000 then kills the process. A
# bracket count bounds the depth at C speed; an envelope has a few dozen (argsrepr is cut at 1 KB).
MAX_BRACKETS = 10_000


def decode_envelope(raw: bytes | str) -> tuple[dict | None, str | None]:
    """The kombu message envelope in a popped list item, decoded as kombu decodes it, and None; or None
    and why kombu's consumer could not take it. Never raises, whatever `raw` holds."""
    raw = bytes(raw) if isinstance(raw, bytearray) else raw
    if _too_nested(raw):
        return None, "too many brackets to parse safely"
    try:
        # As kombu reads it: bytes that are not UTF-8 become U+FFFD, so they only matter where they break the JSON.
        message = loads(bytes_to_str(raw))
    except Exception as exc:  # JSON errors, and whatever kombu's object hook raises on a `__type__` it cannot build
        return None, f"not JSON ({type(exc).__name__})"
    problem = envelope_problem(message)
    return (None, problem) if problem else (message, None)


def envelope_problem(message: object) -> str | None:
    """What makes a decoded item undeliverable through kombu's virtual channel (`Message`, the Redis QoS),
    or None. Checks exactly the fields kombu reads before Celery sees the message."""
    if not isinstance(message, dict):
        return f"not an envelope (a JSON {type(message).__name__})"
    props = message.get("properties")
    if not isinstance(props, dict):
        return "no properties"
    tag = props.get("delivery_tag")
    if not isinstance(tag, str | int) or isinstance(tag, bool):
        return "no delivery tag"
    info = props.get("delivery_info")
    if not isinstance(info, dict) or not isinstance(info.get("exchange"), str) or not isinstance(info.get("routing_key"), str):
        return "no delivery info"
    if message.get("headers") is not None and not isinstance(message["headers"], dict):
        return "headers not an object"
    for field in ("content-type", "content-encoding"):
        if message.get(field) is not None and not isinstance(message[field], str):
            return f"{field} not a string"
    encoding, body = props.get("body_encoding"), message.get("body")
    if encoding is not None and not isinstance(encoding, str):
        return "body encoding not a string"
    if body and encoding and encoding.lower() != "utf-8":
        codec = virtual.Channel.codecs.get(encoding)
        if codec is None:
            return f"unknown body encoding {encoding[:20]!r}"
        try:
            decoded = codec.decode(body)
        except Exception:  # what Message() would raise: binascii.Error, TypeError, ...
            return f"body not {encoding}"
        if isinstance(decoded, bytes | str) and _too_nested(decoded):  # Celery decodes it in the worker's main process
            return "body has too many brackets to parse safely"
    return None


def _too_nested(data: bytes | str) -> bool:
    if isinstance(data, bytes):
        return data.count(b"[") + data.count(b"{") > MAX_BRACKETS
    return data.count("[") + data.count("{") > MAX_BRACKETS


def dead_letter(queue: str, key: str, raw: bytes | str, problem: str, at: float) -> str:
    """A dead-letter list entry: where the item was, when, why, and the item itself (text if it is UTF-8,
    else base64), its first KEPT_BYTES."""
    data = raw.encode("utf-8", "surrogatepass") if isinstance(raw, str) else bytes(raw)
    entry: dict = {"queue": queue, "list": key, "at": at, "size": len(data), "problem": problem}
    kept = data[:KEPT_BYTES]
    try:
        entry["raw"] = kept.decode("utf-8")
    except UnicodeDecodeError:
        entry["raw_base64"] = base64.b64encode(kept).decode("ascii")
    if len(kept) < len(data):
        entry["truncated"] = True
    return json.dumps(entry)


def raw_of(entry: dict) -> bytes:
    """The payload kept in a dead-letter entry (as much as was kept)."""
    if "raw_base64" in entry:
        return base64.b64decode(entry["raw_base64"])
    return str(entry.get("raw", "")).encode("utf-8", "surrogatepass")


class _PoisonSafe:
    """Mixed in before kombu's Redis channel classes."""

    deadletter_key = DEADLETTER_KEY
    deadletter_max = DEADLETTER_MAX

    def _brpop_read(self, **options):
        # kombu 5.7's Channel._brpop_read, but for the decode.
        try:
            try:
                dest__item = self.client.parse_response(self.client.connection, "BRPOP", **options)
            except self.connection_errors:
                self.client.connection.disconnect()
                raise
            if not dest__item:
                raise Empty()
            key, item = dest__item
            key = bytes_to_str(key)
            dest = key.rsplit(self.sep, 1)[0]
            self._queue_cycle.rotate(dest)
            message, problem = decode_envelope(item)
            if message is None:
                self._dead_letter(dest, key, item, problem)
                raise Empty()
            self.connection._deliver(message, dest)
            return True
        finally:
            self._in_poll = None
            self._flush_brpop_reauth()

    def _get(self, queue):
        # kombu 5.7's Channel._get, but for the decode: a poison item is set aside and the next one taken.
        with self.conn_or_acquire() as client:
            for pri in self.priority_steps:
                key = self._q_for_pri(queue, pri)
                while (item := client.rpop(key)) is not None:
                    message, problem = decode_envelope(item)
                    if message is not None:
                        self._maybe_update_queues_expire(client, queue)
                        return message
                    self._dead_letter(queue, key, item, problem, client)
            self._maybe_update_queues_expire(client, queue)
            raise Empty()

    def _deliver_fanout_message(self, message, exchange):
        problem = envelope_problem(message)
        if problem:
            self._dead_letter(exchange, f"pubsub:{exchange}", dumps(message), problem)
            return False
        return super()._deliver_fanout_message(message, exchange)

    def _dead_letter(self, queue: str, key: str, raw: bytes | str, problem: str, client=None) -> None:
        size = len(raw.encode("utf-8", "surrogatepass") if isinstance(raw, str) else raw)
        first = raw[:SHOWN_BYTES] if isinstance(raw, str) else bytes(raw[:SHOWN_BYTES])
        log.warning("poison message on %s (%d bytes): %r: %s; moved to %s", queue, size, first, problem, self.deadletter_key)
        entry = dead_letter(queue, key, raw, problem, time.time())
        try:
            with self.conn_or_acquire(client) as conn:
                pipe = conn.pipeline(transaction=False)
                pipe.lpush(self.deadletter_key, entry)
                pipe.ltrim(self.deadletter_key, 0, self.deadletter_max - 1)
                pipe.execute()
        except Exception as exc:  # consuming goes on even when the dead letter cannot be kept
            log.error("poison message on %s not kept in %s: %s", queue, self.deadletter_key, exc)


class _SurvivesLostConnection:
    """Mixed in before kombu's Redis channel classes."""

    def _connparams(self, asynchronous=False):
        """Celery 5.7 closes a lost connection's channel after dropping the transport's connection info
        (`Consumer.on_connection_error_after_connected`); kombu then builds a new pool from None (restoring the
        unacked messages at the close, an ack arriving after it) and raises AttributeError, which kills the
        worker (the kombu#582 family; found by make chaos: a Redis restart while the default worker held a
        countdown task, and 3 Sentinel failover runs in 22). A connection error is what kombu's callers ignore;
        the unacked messages stay in the unacked hash, and `restore_visible` brings them back."""
        if self.connection is None or self.connection.client is None:
            raise redis.exceptions.ConnectionError("broker connection already closed")
        return super()._connparams(asynchronous)


class PoisonSafeChannel(_SurvivesLostConnection, _PoisonSafe, kredis.Channel):
    from_transport_options = (*kredis.Channel.from_transport_options, "deadletter_key", "deadletter_max")


class PoisonSafeSentinelChannel(_SurvivesLostConnection, _PoisonSafe, kredis.SentinelChannel):
    from_transport_options = (*kredis.SentinelChannel.from_transport_options, "deadletter_key", "deadletter_max")


class PoisonSafeTransport(kredis.Transport):
    """redis://: kombu's Redis transport with the poison-safe channel."""

    Channel = PoisonSafeChannel


class PoisonSafeTLSTransport(PoisonSafeTransport):
    """rediss://. Only the name kombu prints (and Flower reads) differs, and TLS is never left out: kombu
    turns it on for its `rediss` alias only, where a named transport class would otherwise talk plain text."""

    def __init__(self, client, **kwargs):
        if not client.ssl:
            client.ssl = {"ssl_cert_reqs": ssl.CERT_REQUIRED}
        super().__init__(client, **kwargs)


class PoisonSafeSentinelTransport(kredis.SentinelTransport):
    """sentinel://: kombu's Sentinel transport with the poison-safe channel."""

    Channel = PoisonSafeSentinelChannel


_TRANSPORTS = {"redis": PoisonSafeTransport, "rediss": PoisonSafeTLSTransport, "sentinel": PoisonSafeSentinelTransport}
for _scheme, _cls in _TRANSPORTS.items():
    # A connection's URL (worker banner, Flower's broker page) names the transport by its URL scheme, not
    # by our class's dotted path: Flower picks its queue-length reader from that scheme.
    resolve_aliases.setdefault(f"{__name__}:{_cls.__name__}", _scheme)


def transport_for(url: str) -> str | None:
    """The dotted path of the poison-safe transport for a broker URL, for Celery's `broker_transport`.
    None for other schemes: kombu then picks the transport from the URL, as without this module (kombu
    has no unix:// broker URL; its `redis+socket://` names the stock transport itself)."""
    cls = _TRANSPORTS.get(urlsplit(url).scheme)
    return f"{__name__}:{cls.__name__}" if cls else None
