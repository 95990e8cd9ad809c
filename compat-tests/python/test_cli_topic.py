"""`phxq topic` (README: The CLI) against a running broker, as an operator or a script uses
it: create (with configs, validate-only), list and describe (human and --json), produce
lines with keys and headers (keyed records land where Kafka's Java partitioner puts them,
checked against librdkafka's murmur2 partitioner), consume (formats, JSON, from an offset,
-N, a time, a group's offsets with commits), add partitions, alter configs, delete,
`phxq group list --json|describe --json|delete`, `phxq config describe --json`, `phxq cluster info` (table and --json), and the error exits.
In a three-node cluster the records go to and come from each partition's leader."""

from __future__ import annotations

import json
import os
import subprocess
import time

from conftest import PHXQ_BIN
from phxq_clients import confluent_consume


def phxq(bootstrap: str, *args: str, stdin: str | None = None, ok: bool = True) -> subprocess.CompletedProcess:
    r = subprocess.run([PHXQ_BIN, "topic", *args, "--bootstrap", bootstrap], input=stdin,
                       capture_output=True, text=True, timeout=60, env={**os.environ, "NO_COLOR": "1"})
    if ok:
        assert r.returncode == 0, f"phxq topic {' '.join(args)}: exit {r.returncode}\n{r.stdout}\n{r.stderr}"
    return r


def cluster_info(bootstrap: str) -> dict:
    r = subprocess.run([PHXQ_BIN, "cluster", "info", "--json", "--bootstrap", bootstrap],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    info = json.loads(r.stdout)
    assert set(info) == {"cluster_id", "controller_id", "brokers", "topics", "partitions", "internal_topics"}
    assert isinstance(info["cluster_id"], str) and info["cluster_id"]
    return info


def lines(bootstrap: str, topic: str, *args: str) -> list[dict]:
    out = phxq(bootstrap, "consume", topic, "--to-end", "--json", *args).stdout
    return [json.loads(ln) for ln in out.splitlines()]


def test_topic_commands_on_a_single_node(broker, topic):
    b = broker.bootstrap
    assert "valid:" in phxq(b, "create", topic, "-p", "4", "--validate-only").stdout
    assert topic not in phxq(b, "list").stdout
    out = phxq(b, "create", topic, "-p", "4", "-c", "retention.ms=3600000", "-c", "cleanup.policy=delete").stdout
    assert f"created {topic} (4 partitions" in out
    listed = {t["topic"]: t for t in json.loads(phxq(b, "list", "--json").stdout)}
    assert listed[topic]["partitions"] == 4

    # Keyed lines go where Kafka's Java client (murmur2) would put them; keyless round-robin.
    keys = [f"user-{i}" for i in range(40)]
    stdin = "".join(f"{k}|value-{i}\n" for i, k in enumerate(keys)) + "no key here\n"
    out = phxq(b, "produce", topic, "-k", "|", "-H", "origin=cli", "--json", stdin=stdin).stdout
    assert json.loads(out)["records"] == 41
    got = lines(b, topic)
    assert len(got) == 41
    by_key = {r["key"]: r for r in got if r["key"] is not None}
    assert {k: by_key[k]["value"] for k in keys} == {k: f"value-{i}" for i, k in enumerate(keys)}
    assert all(r["headers"] == [{"key": "origin", "value": "cli"}] for r in got)
    from confluent_kafka import Producer
    ref = topic + "-ref"  # the same keys through librdkafka, into a topic of as many partitions
    phxq(b, "create", ref, "-p", "4")
    p = Producer({"bootstrap.servers": b, "partitioner": "murmur2_random"})
    placed = {}
    for k in keys:
        p.produce(ref, key=k, value=b"x", on_delivery=lambda e, m: placed.__setitem__(m.key().decode(), m.partition()))
    p.flush(30)
    assert {k: by_key[k]["partition"] for k in keys} == placed
    # Offsets are dense per partition from 0, in order.
    for part in range(4):
        offs = [r["offset"] for r in got if r["partition"] == part]
        assert offs == list(range(len(offs)))

    # Formats, counts and starting points.
    first = phxq(b, "consume", topic, "-p", "1", "--to-end", "-f", r"%p:%o:%k=%v;").stdout
    ones = [r for r in got if r["partition"] == 1]
    assert first == "".join(f"1:{r['offset']}:{r['key'] or ''}={r['value']};" for r in ones)
    assert len(lines(b, topic, "-n", "3")) == 3
    assert [r["offset"] for r in lines(b, topic, "-p", "1", "-o", "-2")] == [ones[-2]["offset"], ones[-1]["offset"]]
    assert lines(b, topic, "--from-time", str(int(time.time() * 1000) + 60_000)) == []

    # A group: resume from its committed offsets, commit what was printed.
    part0 = [r for r in got if r["partition"] == 0]
    g1 = lines(b, topic, "-p", "0", "-g", "cli-group", "-n", "2")
    assert [r["offset"] for r in g1] == [0, 1]
    g2 = lines(b, topic, "-p", "0", "-g", "cli-group")
    assert [r["offset"] for r in g2] == [r["offset"] for r in part0[2:]]
    from confluent_kafka import Consumer, TopicPartition
    c = Consumer({"bootstrap.servers": b, "group.id": "cli-group"})
    try:
        [tp] = c.committed([TopicPartition(topic, 0)], timeout=10)
        assert tp.offset == len(part0)
    finally:
        c.close()
    groups = json.loads(subprocess.run([PHXQ_BIN, "group", "list", "--json", "--bootstrap", b],
                                       capture_output=True, text=True, timeout=60, check=True).stdout)
    # It only committed offsets (no members ever): no protocol type, as in Kafka.
    assert {"group": "cli-group", "type": "classic", "state": "Empty", "protocol_type": ""} in groups["groups"]
    assert groups["not_listed"] == []
    # group describe --json: the tables as objects ("-" is null, numbers are numbers).
    desc = json.loads(subprocess.run([PHXQ_BIN, "group", "describe", "cli-group", "--json", "--bootstrap", b],
                                     capture_output=True, text=True, timeout=60, check=True).stdout)
    assert (desc["group"], desc["type"], desc["state"], desc["members"]) == ("cli-group", "classic", "Empty", [])
    [p0] = [p for p in desc["partitions"] if p["partition"] == 0]
    assert p0 == {"topic": topic, "partition": 0, "committed": len(part0), "log_end": len(part0),
                  "lag": 0, "owner": None}
    # ... and `phxq group delete` removes it with its offsets (once; then it is unknown).
    r = subprocess.run([PHXQ_BIN, "group", "delete", "cli-group", "--bootstrap", b],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and "deleted group cli-group" in r.stdout, r.stderr
    r = subprocess.run([PHXQ_BIN, "group", "delete", "cli-group", "--bootstrap", b],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and "GROUP_ID_NOT_FOUND" in r.stderr, (r.stdout, r.stderr)

    d = json.loads(phxq(b, "describe", topic, "--json").stdout)
    assert d["configs"] == {"cleanup.policy": "delete", "retention.ms": "3600000"}
    assert sum(p["log_end_offset"] for p in d["partitions"]) == 41
    assert "now has 6 partitions" in phxq(b, "add-partitions", topic, "--to", "6").stdout
    assert len(json.loads(phxq(b, "describe", topic, "--json").stdout)["partitions"]) == 6
    human = phxq(b, "describe", topic).stdout
    assert "PARTITION  LEADER" in human and any(ln.split() == ["retention.ms", "3600000"] for ln in human.splitlines())

    # alter-config: sets and deletes in one IncrementalAlterConfigs (`phxq config --topic`'s).
    out = phxq(b, "alter-config", topic, "--set", "retention.ms=7200000", "--set", "segment.bytes=1048576",
               "--delete", "cleanup.policy").stdout
    assert out == f"Completed updating config for topic {topic}.\n"
    assert json.loads(phxq(b, "describe", topic, "--json").stdout)["configs"] == \
        {"retention.ms": "7200000", "segment.bytes": "1048576"}
    r = phxq(b, "alter-config", topic, "--set", "retention.ms=soon", ok=False)
    assert r.returncode == 2 and "INVALID_CONFIG" in r.stderr, r.stderr
    r = phxq(b, "alter-config", topic, ok=False)
    assert r.returncode == 2 and "nothing to change" in r.stderr, r.stderr
    assert json.loads(phxq(b, "describe", topic, "--json").stdout)["configs"]["retention.ms"] == "7200000"
    # config describe --json: value, source and synonyms of each config.
    cfg = json.loads(subprocess.run([PHXQ_BIN, "config", "describe", "--topic", topic, "--json", "--bootstrap", b],
                                    capture_output=True, text=True, timeout=60, check=True).stdout)
    assert cfg["resource"] == f"topic {topic}"
    [ret] = [c for c in cfg["configs"] if c["name"] == "retention.ms"]
    assert (ret["value"], ret["source"], ret["read_only"]) == ("7200000", "DYNAMIC_TOPIC_CONFIG", False)
    assert {"name": "retention.ms", "value": "7200000", "source": "DYNAMIC_TOPIC_CONFIG"} in ret["synonyms"]

    # cluster info: the cluster as DescribeCluster and Metadata give it.
    info = cluster_info(b)
    assert info["controller_id"] == info["brokers"][0]["id"]
    assert info["brokers"] == [{"id": info["controller_id"], "host": "127.0.0.1",
                                "port": int(b.rsplit(":", 1)[1]), "rack": None}]
    listed = json.loads(phxq(b, "list", "--json").stdout)
    assert info["internal_topics"] == 0 and info["topics"] == len(listed)
    assert info["partitions"] == sum(t["partitions"] for t in listed)
    human = subprocess.run([PHXQ_BIN, "cluster", "info", "--bootstrap", b], capture_output=True, text=True,
                           timeout=60, check=True).stdout
    assert human.startswith(f"CLUSTER     {info['cluster_id']}\n") and "BROKER  HOST" in human, human

    # Errors: a clear message naming Kafka's error, and exit code 2.
    r = phxq(b, "create", topic, ok=False)
    assert r.returncode == 2 and "TOPIC_ALREADY_EXISTS" in r.stderr, r.stderr
    r = phxq(b, "consume", "no-such-topic", "--to-end", ok=False)
    assert r.returncode == 2 and "UNKNOWN_TOPIC_OR_PARTITION" in r.stderr, r.stderr
    r = phxq(b, "produce", topic, "-p", "9", stdin="x\n", ok=False)
    assert r.returncode == 2 and "no partition 9" in r.stderr, r.stderr
    assert "deleted" in phxq(b, "delete", topic).stdout
    r = phxq(b, "delete", topic, ok=False)
    assert r.returncode == 2 and "UNKNOWN_TOPIC_OR_PARTITION" in r.stderr, r.stderr


def test_produce_and_consume_through_the_leaders_of_a_cluster(cluster, topic):
    b = cluster.bootstrap
    phxq(b, "create", topic, "-p", "6")
    info = cluster_info(b)
    assert [(x["id"], x["host"]) for x in info["brokers"]] == [(1, "127.0.0.1"), (2, "127.0.0.1"), (3, "127.0.0.1")]
    assert {x["port"] for x in info["brokers"]} == {int(a.rsplit(":", 1)[1]) for a in b.split(",")}
    assert info["controller_id"] in (1, 2, 3) and info["topics"] >= 1 and info["partitions"] >= 6
    for p in range(6):
        cluster.wait_leader(topic, p)
    stdin = "".join(f"k{i}:v{i}\n" for i in range(300))
    out = json.loads(phxq(b, "produce", topic, "-k", ":", "--json", stdin=stdin).stdout)
    assert out["records"] == 300 and len(out["partitions"]) == 6
    got = lines(b, topic)
    assert sorted(r["value"] for r in got) == sorted(f"v{i}" for i in range(300))
    # What confluent-kafka reads is the same.
    theirs = confluent_consume(b, topic, partitions=range(6))
    assert sorted((r.partition, r.offset, r.value.decode()) for r in theirs) == \
        sorted((r["partition"], r["offset"], r["value"]) for r in got)
