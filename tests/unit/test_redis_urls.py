"""REDIS_URL: one Redis server, or a Sentinel group with its master's name, checked at start-up; one
client per URL (store.redis.client) and Celery's broker settings follow from it."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from redis.sentinel import SentinelConnectionPool

from liqbot.config import load_settings
from liqbot.errors import ConfigError
from liqbot.store.redis import client
from liqbot.store.redis_url import SentinelUrl, check, parse_sentinel
from tests.unit.test_config import GOOD, _run

GROUP = "sentinel://:s3cret@10.0.0.1:26379;sentinel://10.0.0.2:26380;sentinel://10.0.0.3/2?master_name=mymaster"


def test_a_sentinel_group_with_its_master_name_database_and_password():
    assert parse_sentinel(GROUP) == SentinelUrl(
        sentinels=(("10.0.0.1", 26379), ("10.0.0.2", 26380), ("10.0.0.3", 26379)), master_name="mymaster", db=2,
        username=None, password="s3cret", sentinel_auth=False)


def test_defaults_one_sentinel_no_password_database_0():
    assert parse_sentinel("sentinel://redis-sentinel?master_name=m") == SentinelUrl((("redis-sentinel", 26379),), "m")


def test_the_password_may_be_repeated_on_every_entry_if_it_agrees_and_is_unquoted():
    url = "sentinel://ops:p%40ss@a:1;sentinel://ops:p%40ss@b:2/0?master_name=m&sentinel_auth=true"
    group = parse_sentinel(url)
    assert (group.username, group.password, group.sentinel_auth) == ("ops", "p@ss", True)
    assert group.sentinel_kwargs() == {"socket_timeout": 1.0, "socket_connect_timeout": 1.0, "username": "ops",
                                       "password": "p@ss"}
    assert group.broker()[0] == "sentinel://ops:p%40ss@a:1/0;sentinel://ops:p%40ss@b:2/0"  # quoted again for kombu


def test_the_sentinels_are_asked_without_the_data_nodes_password_unless_told():
    assert "password" not in parse_sentinel(GROUP).sentinel_kwargs()


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("sentinel://a:26379;sentinel://b:26379/0", "needs ?master_name="),
        ("sentinel://a:26379/0?master_name=", "needs ?master_name="),
        ("sentinel://a:26379;redis://b:6379/0?master_name=m", "must start with sentinel://"),
        ("sentinel://:one@a;sentinel://:two@b?master_name=m", "different passwords"),
        ("sentinel://a/0?master_name=m;sentinel://b/1?master_name=m", "disagree on the database"),
        ("sentinel://a/x?master_name=m", "must be a number"),
        ("sentinel://a:port?master_name=m", "bad sentinel port"),
        ("sentinel://?master_name=m", "no sentinel host"),
        ("sentinel://a;sentinel://a?master_name=m", "listed twice"),
        ("sentinel://a?master=m", "unknown parameter 'master'"),
        ("sentinel://a?master_name=m&sentinel_auth=maybe", "sentinel_auth must be true or false"),
        ("sentinel://a?master_name=m&sentinel_auth=true", "needs a password"),
        ("http://a:6379", "not a redis URL"),
    ],
)
def test_bad_urls_say_why_in_one_line(url: str, reason: str):
    with pytest.raises(ValueError, match=reason.replace("?", r"\?")) as err:
        check(url)
    assert "\n" not in str(err.value)


def test_one_server_urls_still_pass():
    for url in ("redis://127.0.0.1:6379/0", "rediss://:pw@redis.example:6380/1", "unix:///run/redis.sock?db=3"):
        assert check(url) == url


def test_a_bad_url_stops_start_up_naming_redis_url(monkeypatch: pytest.MonkeyPatch):
    for k, v in {**GOOD, "REDIS_URL": "sentinel://:hunter2@a:26379;sentinel://b:26379/0"}.items():
        monkeypatch.setenv(k, v)
    with pytest.raises(ConfigError) as err:
        load_settings()
    line = next(line for line in str(err.value).splitlines() if "REDIS_URL" in line).strip()
    assert line.startswith("REDIS_URL: a sentinel URL needs ?master_name=")
    assert "hunter2" not in str(err.value)


def test_the_password_is_masked_in_the_effective_configuration(monkeypatch: pytest.MonkeyPatch):
    for k, v in {**GOOD, "REDIS_URL": GROUP}.items():
        monkeypatch.setenv(k, v)
    assert "s3cret" not in load_settings().redacted()["redis_url"]


def test_the_client_of_a_group_is_the_masters_found_through_the_sentinels():
    r = client(GROUP)  # nothing is contacted until the first command
    try:
        pool = r.connection_pool
        assert isinstance(pool, SentinelConnectionPool)
        assert pool.service_name == "mymaster"
        kwargs = pool.connection_kwargs
        assert (kwargs["db"], kwargs["password"], kwargs["decode_responses"]) == (2, "s3cret", True)
        assert [s.connection_pool.connection_kwargs["port"] for s in pool.sentinel_manager.sentinels] == [26379, 26380, 26379]
        assert client(GROUP) is r  # one per URL and process
    finally:
        client.cache_clear()


def test_celery_uses_kombus_sentinel_transport_with_the_master_name():
    code = ("import celeryconfig as c; print(c.broker_url); o = c.broker_transport_options; "
            "print(o['master_name'], o['visibility_timeout'], sorted(o['sentinel_kwargs']))")
    res = _run(sys.executable, "-c", code, env={**GOOD, "REDIS_URL": GROUP})
    assert res.returncode == 0, res.stderr
    url, options = res.stdout.strip().splitlines()
    # every entry carries the data nodes' password and the database: kombu may read either entry
    assert url == ("sentinel://:s3cret@10.0.0.1:26379/2;sentinel://:s3cret@10.0.0.2:26380/2;"
                   "sentinel://:s3cret@10.0.0.3:26379/2")
    assert options == "mymaster 60 ['socket_connect_timeout', 'socket_timeout']"


def test_the_compose_ha_option_points_every_liqbot_process_at_its_sentinels():
    import yaml

    root = Path(__file__).resolve().parents[2]
    main = yaml.safe_load((root / "docker-compose.yml").read_text())["services"]
    ha = yaml.safe_load((root / "docker-compose.ha.yml").read_text())["services"]
    liqbot = {name for name, svc in main.items() if svc.get("image") == "liqbot:latest" and name != "devnet"}
    assert liqbot
    assert liqbot <= set(ha)
    sentinels = {"sentinel-1", "sentinel-2", "sentinel-3"}
    for name in liqbot:
        group = parse_sentinel(ha[name]["environment"]["REDIS_URL"])
        assert {h for h, _ in group.sentinels} == set(ha[name]["depends_on"]) == sentinels
    for name in sentinels:
        assert f"sentinel monitor {group.master_name} redis 6379 2" in ha[name]["command"][0]
    replica = ha["redis-replica"]["command"]
    assert replica[replica.index("--replicaof") + 1 :] == ["redis", "6379"]
    for node in ("redis", "redis-replica"):  # persistence as the README recommends, on both
        assert "--appendonly yes --appendfsync everysec --save " in " ".join(ha[node]["command"])
