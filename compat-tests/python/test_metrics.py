"""Metrics and health (README: Metrics): /metrics is scraped while real clients produce
and consume, and its counters move by exactly what they did: records and bytes in and out
per topic, requests and error codes per API, the consumer lag of a group (log end minus
committed), request latency split per API (queue, local, remote, send), Raft and partition
leadership, connections. The whole exposition must parse
with the Prometheus project's own OpenMetrics parser. /health/live and /health/ready answer
for load balancers; in a three-node cluster every store group has exactly one leader in the
metrics, and killing a store group's leader shows up in the survivors' election and
leader-change counters and as under-replicated partitions on the leaders. With
`--log-format json` every log line is one JSON object with the event's fields."""

from __future__ import annotations

import time
import urllib.error
import urllib.request

from conftest import free_port
from phxq_clients import Rec, confluent_consume, confluent_produce
from phxq_wire import Conn, Record, build_batch, wait_for

UNKNOWN_TOPIC_OR_PARTITION = "UNKNOWN_TOPIC_OR_PARTITION"


def get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=10) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def scrape(port: int) -> dict[tuple[str, tuple], float]:
    """Every sample of /metrics as {(name, sorted labels): value}, parsed by prometheus_client."""
    from prometheus_client.openmetrics.parser import text_string_to_metric_families
    status, text = get(f"http://127.0.0.1:{port}/metrics")
    assert status == 200, text
    assert text.rstrip().endswith("# EOF")
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def value(samples, name: str, **labels) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def test_counters_follow_what_clients_did(broker_factory, topic):
    port = free_port()
    b = broker_factory("--metrics-listen", f"127.0.0.1:{port}")
    n, size = 500, 100
    recs = [Rec(0, -1, f"k{i}".encode(), f"{i:04d}".encode().ljust(size, b"."), (), 0) for i in range(n)]
    confluent_produce(b.bootstrap, topic, recs)
    m = scrape(port)
    assert value(m, "phxq_topic_records_in_total", topic=topic) == n
    # Batch bytes: at least the values, at most values plus a generous per-record overhead.
    bytes_in = value(m, "phxq_topic_in_bytes_total", topic=topic)
    assert n * size <= bytes_in <= n * (size + 100), bytes_in
    produces = sum(v for (name, labels), v in m.items()
                   if name == "phxq_requests_total" and dict(labels)["api"] == "Produce")
    assert produces >= 1
    assert value(m, "phxq_raft_is_leader", store_group="1") == 1
    assert value(m, "phxq_leader_partitions") == 1
    assert value(m, "phxq_ready") == 1
    # acks=all: every durable group commit is in the fsync histogram.
    syncs = value(m, "phxq_storage_syncs_total")
    assert syncs > 0 and value(m, "phxq_storage_sync_duration_seconds_count") == syncs
    assert value(m, "phxq_storage_sync_duration_seconds_bucket", le="+Inf") == syncs

    # Consumed once from the start: exactly what was produced goes out.
    got = confluent_consume(b.bootstrap, topic)
    assert len(got) == n
    m = scrape(port)
    assert value(m, "phxq_topic_records_out_total", topic=topic) == n
    assert value(m, "phxq_topic_out_bytes_total", topic=topic) == bytes_in

    # Where the time went, Kafka's split (RequestQueueTime, LocalTime, RemoteTime,
    # ResponseSendTime): every produce and fetch is in the queue and local histograms; the
    # produces' Raft commit is their remote part (fetches have none); the responses'
    # writes are in send (the last one may be counted just after the client read it).
    def count(phase: str, api: str) -> float:
        return value(m, f"phxq_request_{phase}_seconds_count", api=api)

    def total(phase: str, api: str) -> float:
        return value(m, f"phxq_request_{phase}_seconds_sum", api=api)
    for api in ("Produce", "Fetch"):
        answered = count("duration", api)
        assert answered > 0, api
        assert count("queue_time", api) == count("local_time", api) == answered, api
        assert 0 < count("send_time", api) <= answered, api
        assert value(m, "phxq_request_send_time_seconds_bucket", api=api, le="+Inf") == count("send_time", api)
    assert count("remote_time", "Produce") == count("duration", "Produce")
    assert count("remote_time", "Fetch") == 0
    # Queue, local and remote make up a request's whole time until its response is ready.
    phases = total("queue_time", "Produce") + total("local_time", "Produce") + total("remote_time", "Produce")
    assert abs(phases - total("duration", "Produce")) < 1e-6, (phases, total("duration", "Produce"))
    # acks=all: the remote part is at least the fsync's.
    assert total("remote_time", "Produce") > 0

    # A group that committed offset 120: its lag is the rest.
    from confluent_kafka import Consumer, TopicPartition
    c = Consumer({"bootstrap.servers": b.bootstrap, "group.id": "metrics-g", "enable.auto.commit": False})
    try:
        c.commit(offsets=[TopicPartition(topic, 0, 120)], asynchronous=False)
    finally:
        c.close()
    m = scrape(port)
    assert value(m, "phxq_consumer_group_lag", group="metrics-g", topic=topic, partition="0") == n - 120
    assert value(m, "phxq_consumer_group_lag_sum", group="metrics-g") == n - 120

    # An error code in a response is counted under its API and Kafka name; the open
    # connection is counted while it is open.
    before = value(m, "phxq_request_errors_total", api="Produce", error=UNKNOWN_TOPIC_OR_PARTITION)
    with Conn.to(b.bootstrap) as conn:
        batch = build_batch([Record(key=None, value=b"x", timestamp=int(time.time() * 1000))])
        assert conn.produce_v3(topic, 7, batch)[0] == 3
        m = scrape(port)
        assert value(m, "phxq_connections") >= 1
    assert value(m, "phxq_request_errors_total", api="Produce", error=UNKNOWN_TOPIC_OR_PARTITION) == before + 1

    assert get(f"http://127.0.0.1:{port}/health/live")[0] == 200
    assert get(f"http://127.0.0.1:{port}/health/ready") == (200, "ready\n")
    assert get(f"http://127.0.0.1:{port}/nothing")[0] == 404


def test_cluster_leaders_and_under_replicated_partitions(cluster, topic):
    ports = cluster.metrics_ports
    cluster.create_topic(topic, 3)
    wait_for(lambda: all(get(f"http://127.0.0.1:{p}/health/ready")[0] == 200 for p in ports.values()),
             30, what="every node ready")

    def leaders_per_group():
        counts: dict[str, int] = {}
        for node, p in ports.items():
            if not cluster.nodes[node].alive():
                continue
            for (name, labels), v in scrape(p).items():
                if name == "phxq_raft_is_leader" and v == 1:
                    g = dict(labels)["store_group"]
                    counts[g] = counts.get(g, 0) + 1
        return counts
    counts = wait_for(lambda: (lambda c: c if len(c) == 4 and set(c.values()) == {1} else None)(leaders_per_group()),
                      30, what="one leader per store group in the metrics")
    assert sorted(counts) == ["0", "1", "2", "3"]
    led = sum(value(scrape(p), "phxq_leader_partitions") for p in ports.values())
    assert led == 3, f"{led} partitions led in total, the topic has 3"

    # A node goes: the leader of store group 1. The others elect a new one, and their
    # election counters say so; the partitions led elsewhere are under-replicated there.
    def leader_of(g: str) -> int | None:
        for n, p in ports.items():
            if cluster.nodes[n].alive() and value(scrape(p), "phxq_raft_is_leader", store_group=g) == 1:
                return n
        return None
    victim = leader_of("1")
    assert victim is not None
    survivors = [n for n in ports if n != victim]
    before = {n: scrape(ports[n]) for n in survivors}
    cluster.kill9(victim)

    def counted(name: str):
        def moved():
            return all(value(scrape(ports[n]), name, store_group="1") > value(before[n], name, store_group="1")
                       for n in survivors)
        return moved
    t0 = time.monotonic()
    wait_for(counted("phxq_raft_elections_total"), 20, interval=0.2, what="elections counted on the survivors")
    wait_for(counted("phxq_raft_leader_changes_total"), 20, interval=0.2,
             what="the new leader counted on the survivors")
    new_leader = wait_for(lambda: leader_of("1"), 20, interval=0.2, what="a new leader of store group 1")
    assert new_leader in survivors, new_leader
    # ... and each survivor logged it, with the ids to follow it.
    for n in survivors:
        logged = wait_for(lambda: [ln for ln in cluster.nodes[n].log_path.read_text(errors="replace").splitlines()
                                   if "store group has a new leader" in ln and "store_group=1 " in ln
                                   and f"leader={new_leader} " in ln], 10, what=f"node {n} logging the new leader")
        assert "term=" in logged[-1], logged
    print(f"store group 1: leader {victim} killed, {new_leader} counted as new leader in "
          f"{time.monotonic() - t0:.1f} s")

    def under():
        total = 0
        for n in survivors:
            total += value(scrape(ports[n]), "phxq_under_replicated_partitions")
        return total if total > 0 else None
    wait_for(under, 30, interval=0.5, what="under-replicated partitions after a node died")


def test_json_logs_one_object_per_line(broker_factory, topic):
    import json
    b = broker_factory("--log-format", "json", "--metrics-listen", "")
    with Conn.to(b.bootstrap) as c:
        assert c.create_topics_v2([(topic, 1)])[topic][0] == 0
    lines = [ln for ln in b.log_path.read_text().splitlines() if ln and not ln.startswith("=====")]
    events = [json.loads(ln) for ln in lines]  # every line is one JSON object
    created = [e for e in events if e["fields"].get("message") == "created topic"]
    assert created and created[0]["fields"]["topic"] == topic and created[0]["level"] == "INFO", events
