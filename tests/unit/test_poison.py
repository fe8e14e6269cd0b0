"""The broker's poison check (liqbot.broker): what kombu's consumer can take, what it must set aside, and
the dead-letter entries, on recorded and arbitrary inputs (no Redis)."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator

import pytest
from celery import Celery
from hypothesis import given, settings
from hypothesis import strategies as st
from kombu import Connection, Queue

from liqbot.broker import KEPT_BYTES, dead_letter, decode_envelope, raw_of, transport_for

USER = "0x" + "11" * 20


@pytest.fixture(scope="module")
def channel() -> Iterator:
    with Connection("memory://") as conn:
        yield conn.channel()


@pytest.fixture(scope="module")
def envelope(channel) -> dict:
    """A real task message, as Celery publishes it and kombu's Redis transport LPUSHes it (as JSON)."""
    queue = Queue("priority", routing_key="priority")
    queue(channel).declare()
    app = Celery("poison-test")
    app.send_task("liqbot.check_and_liquidate", args=[USER, 1, 1.0, "scan"], queue=queue, producer=app.amqp.Producer(channel))
    return channel._get("priority")


def _with(envelope: dict, **changes) -> bytes:
    env = json.loads(json.dumps(envelope))
    for path, value in changes.items():
        *parents, last = path.split("__")
        node = env
        for p in parents:
            node = node[p]
        if value is _DROP:
            del node[last]
        else:
            node[last.replace("_", "-") if last.startswith("content") else last] = value
    return json.dumps(env).encode()


_DROP = object()


def test_a_real_task_message_decodes_as_kombu_decodes_it(envelope: dict, channel):
    message, problem = decode_envelope(json.dumps(envelope).encode())
    assert problem is None
    assert message == envelope
    assert channel.Message(message, channel=channel).decode()[0] == [USER, 1, 1.0, "scan"]


@pytest.mark.parametrize(("raw", "problem"), [
    (b"\xff\xfe", "not JSON"),
    (b"not json", "not JSON"),
    (b"", "not JSON"),
    (b"[1,2]", "not an envelope (a JSON list)"),
    (b"42", "not an envelope (a JSON int)"),
    (b'"text"', "not an envelope (a JSON str)"),
    (b"null", "not an envelope (a JSON NoneType)"),
    (b"{}", "no properties"),
    (b'{"properties": []}', "no properties"),
    (b'{"properties": {}}', "no delivery tag"),
    (b'{"properties": {"delivery_tag": true}}', "no delivery tag"),
    (b'{"properties": {"delivery_tag": "t"}}', "no delivery info"),
    (b'{"properties": {"delivery_tag": "t", "delivery_info": {"exchange": ""}}}', "no delivery info"),
    (b'{"__type__": "datetime", "__value__": "not a date"}', "not JSON"),  # kombu's object hook raises
    (b"[" * 100_000, "too many brackets"),  # would crash the interpreter (see MAX_BRACKETS)
    (b'{"a":' * 20_000, "too many brackets"),
    (b"[" * 900 + b"]" * 900, "not an envelope"),  # deep, but parsed safely
])
def test_garbage_is_poison_with_its_reason(raw: bytes, problem: str):
    message, why = decode_envelope(raw)
    assert message is None
    assert why is not None
    assert why.startswith(problem)


def test_a_truncated_envelope_is_poison(envelope: dict):
    raw = json.dumps(envelope).encode()
    for cut in (1, len(raw) // 2, len(raw) - 1):
        assert decode_envelope(raw[:cut])[0] is None


@pytest.mark.parametrize(("changes", "problem"), [
    ({"headers": [1]}, "headers not an object"),
    ({"content_type": 5}, "content-type not a string"),
    ({"properties__body_encoding": "rot13"}, "unknown body encoding"),
    ({"properties__body_encoding": 7}, "body encoding not a string"),
    ({"body": "abc"}, "body not base64"),  # bad padding (other stray characters are skipped)
    ({"body": {"a": 1}}, "body not base64"),
    ({"properties__delivery_info": _DROP}, "no delivery info"),
    ({"properties__delivery_tag": [1]}, "no delivery tag"),
    ({"body": base64.b64encode(b"[" * 100_000).decode()}, "body has too many brackets"),
])
def test_an_envelope_kombu_would_choke_on_is_poison(envelope: dict, changes: dict, problem: str):
    message, why = decode_envelope(_with(envelope, **changes))
    assert message is None
    assert why is not None
    assert why.startswith(problem)


def test_a_garbage_body_in_a_good_envelope_is_left_to_celery(envelope: dict):
    """Celery rejects a body it cannot decode itself (liqbot.consumer covers the shapes it cannot)."""
    for body in (b"not json", b"[1]", b"\xff"):
        message, problem = decode_envelope(_with(envelope, body=base64.b64encode(body).decode()))
        assert problem is None
        assert message is not None


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=512))
def test_arbitrary_bytes_never_raise(raw: bytes):
    message, problem = decode_envelope(raw)
    assert (message is None) != (problem is None)


_json = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
                     lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=5),
                     max_leaves=20)
_envelope_like = st.fixed_dictionaries({}, optional={
    "body": _json | st.text(alphabet="ABCDab+/=", max_size=12),
    "headers": _json,
    "content-type": _json,
    "content-encoding": _json,
    "properties": st.fixed_dictionaries({}, optional={
        "delivery_tag": _json,
        "body_encoding": st.sampled_from(["base64", "utf-8", "other"]) | _json,
        "delivery_info": st.fixed_dictionaries({}, optional={"exchange": _json, "routing_key": _json}) | _json,
    }) | _json,
})


@settings(max_examples=150, deadline=None)
@given(value=_envelope_like | _json)
def test_whatever_passes_kombu_can_deliver(value: object, channel):
    """Envelope-shaped JSON, fields right or wrong: never raises, and what it lets through kombu's
    Message and the Redis QoS (delivery_info's exchange and routing key, a hashable tag) accept."""
    message, problem = decode_envelope(json.dumps(value).encode())
    if message is None:
        assert problem
        return
    m = channel.Message(message, channel=channel)
    assert m.delivery_info["exchange"] is not None
    assert m.delivery_info["routing_key"] is not None
    hash(m.delivery_tag)


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=256), st.sampled_from(["priority", "default"]))
def test_a_dead_letter_keeps_the_payload_and_where_it_was(raw: bytes, queue: str):
    entry = json.loads(dead_letter(queue, f"{queue}\x06\x163", raw, "not JSON", 1.5))
    assert raw_of(entry) == raw
    assert (entry["queue"], entry["list"], entry["size"], entry["at"]) == (queue, f"{queue}\x06\x163", len(raw), 1.5)


def test_a_huge_dead_letter_is_cut_but_its_size_kept():
    raw = b"x" * (KEPT_BYTES + 10)
    entry = json.loads(dead_letter("default", "default", raw, "not JSON", 0))
    assert entry["truncated"] is True
    assert entry["size"] == KEPT_BYTES + 10
    assert raw_of(entry) == raw[:KEPT_BYTES]


@pytest.mark.parametrize(("url", "path"), [
    ("redis://127.0.0.1:6379/0", "liqbot.broker:PoisonSafeTransport"),
    ("redis://liqbot:pw@127.0.0.1:6379/0", "liqbot.broker:PoisonSafeTransport"),
    ("rediss://h:6380/0", "liqbot.broker:PoisonSafeTLSTransport"),
    ("sentinel://a:26379;sentinel://b:26379/0", "liqbot.broker:PoisonSafeSentinelTransport"),
    ("unix:///run/redis.sock", None),  # kombu has no unix:// broker: left to kombu, as before
])
def test_the_transport_follows_the_url(url: str, path: str | None):
    assert transport_for(url) == path


@pytest.mark.parametrize(("url", "scheme"), [("redis://127.0.0.1:6379/0", "redis"), ("rediss://h:6380/0", "rediss")])
def test_the_connection_url_keeps_its_scheme_for_flower(url: str, scheme: str):
    """Flower picks its queue-length reader from the scheme of the broker connection's URL."""
    with Connection(url, transport=transport_for(url), ssl={"ssl_cert_reqs": 0} if scheme == "rediss" else False) as conn:
        assert conn.as_uri().startswith(f"{scheme}://")
        assert conn.transport.driver_type == "redis"


def test_the_sentinel_variant_keeps_kombus_sentinel_options_and_adds_ours():
    from kombu.transport.redis import SentinelChannel

    from liqbot.broker import PoisonSafeSentinelChannel, PoisonSafeSentinelTransport

    assert PoisonSafeSentinelTransport.Channel is PoisonSafeSentinelChannel
    assert issubclass(PoisonSafeSentinelChannel, SentinelChannel)
    assert {"master_name", "sentinel_kwargs", "deadletter_key", "visibility_timeout"} <= set(
        PoisonSafeSentinelChannel.from_transport_options)
    url = "sentinel://a:26379;sentinel://b:26379/0"
    with Connection(url, transport=transport_for(url)) as conn:
        assert conn.as_uri().startswith("sentinel://")


def test_tls_is_never_dropped_for_a_rediss_url():
    with Connection("rediss://h:6380/0", transport=transport_for("rediss://h:6380/0")) as conn:
        assert conn.transport  # the transport is made here
        assert conn.ssl
