"""The web console (README: Web console), in a real headless Chromium: a broker with a
metrics listener gets a topic, records (one whose value is an <img onerror> and one of raw
bytes), a group that committed an offset while a member holds the partitions; each console
page is loaded, its script runs (virtual time), and the DOM must show the live data: the
topic and its partition count, traffic rates, the group's member and lag with the lag plot
drawn, the records with the hostile value as text and the bytes escaped. A screenshot of
every page goes to compat-tests/python/artifacts/. Bad requests get 400s with reasons;
`console = false` leaves the metrics on; on a three-node cluster each node's console shows
offsets of the partitions it leads and the leader's id for the others."""

from __future__ import annotations

import json
import shutil
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from conftest import free_port

ARTIFACTS = Path(__file__).resolve().parent / "artifacts"
HOSTILE_KEY = "<script>alert(1)</script>"
HOSTILE_VALUE = "<img src=x onerror=alert(1)>"
BINARY_KEY = b"\x00\xff"
BINARY_VALUE = bytes([0x00, 0x01, 0xFE, 0xFF]) + b"tail"


def chromium() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    return None


def headless(browser: str, url: str, *args: str) -> str:
    r = subprocess.run(
        [browser, "--headless=new", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
         "--virtual-time-budget=5000", *args, url],
        capture_output=True, timeout=60)
    assert r.returncode == 0, r.stderr.decode(errors="replace")[-2000:]
    return r.stdout.decode()


def get(url: str):
    """(status, headers (case-insensitive), body) without following redirects."""
    class NoRedirect(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *a, **k):
            return None
    opener = urllib.request.build_opener(NoRedirect)
    try:
        with opener.open(url, timeout=10) as r:
            return r.status, r.headers, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.headers, e.read().decode()


def test_console_pages_in_headless_chromium(broker_factory, topic):
    from confluent_kafka import Consumer, Producer, TopicPartition
    from confluent_kafka.admin import AdminClient, NewTopic

    port = free_port()
    b = broker_factory("--metrics-listen", f"127.0.0.1:{port}")
    base = f"http://127.0.0.1:{port}"
    admin = AdminClient({"bootstrap.servers": b.bootstrap})
    for f in admin.create_topics([NewTopic(topic, 3, 1)]).values():
        f.result(timeout=30)

    p = Producer({"bootstrap.servers": b.bootstrap, "linger.ms": 0})
    for i in range(30):
        p.produce(topic, key=f"k{i}", value=f"value-{i}", partition=i % 3, headers=[("n", str(i))])
    p.produce(topic, key=HOSTILE_KEY, value=HOSTILE_VALUE, partition=0,
              headers=[("h<b>", b"\xde\xad<\xbe\xef")])
    p.produce(topic, key=BINARY_KEY, value=BINARY_VALUE, partition=0)
    assert p.flush(30) == 0
    end0 = 12  # 10 plain records, the hostile one and the binary one
    # Raw wire, as no client library writes it: a header key that is not UTF-8, and one key
    # twice (Kafka keeps both). Offset 10 of partition 1.
    from phxq_wire import Conn, Record, build_batch
    with Conn.to(b.bootstrap) as conn:
        err, base_offset = conn.produce_v3(topic, 1, build_batch(
            [Record(b"raw", b"v", [(b"\xff\xfe", b"x"), ("dup", b"1"), ("dup", b"2")])]))
    assert (err, base_offset) == (0, 10)

    # A member holding the partitions, and a committed offset: lag = 12 - 2 on partition 0.
    group = "console-group"
    c = Consumer({"bootstrap.servers": b.bootstrap, "group.id": group, "client.id": "console-test-client",
                  "enable.auto.commit": False, "auto.offset.reset": "earliest"})
    try:
        c.subscribe([topic])
        deadline = time.time() + 20
        while not c.assignment() and time.time() < deadline:
            c.poll(0.2)
        assert c.assignment(), "the consumer got no assignment"
        c.commit(offsets=[TopicPartition(topic, 0, 2)], asynchronous=False)

        browser = chromium()
        if browser is None:
            pytest.skip("chromium not found (compat-tests/run.sh installs it with apt-get): "
                        "the console pages were not loaded in a browser")
        ARTIFACTS.mkdir(exist_ok=True)

        def page(name: str, path: str) -> str:
            headless(browser, base + path, f"--screenshot={ARTIFACTS / f'console-{name}.png'}",
                     "--window-size=1280,900")
            return headless(browser, base + path, "--dump-dom")

        dom = page("cluster", "/")  # the redirect to /console/ included
        assert "<h1>Cluster</h1>" in dom
        assert f"127.0.0.1:{b.port}" in dom
        assert '<span class="ok">ready</span>' in dom
        assert "(metadata)" in dom and "Leader" in dom

        dom = page("topics", "/console/topics")
        assert f'<tr data-topic="{topic}">' in dom
        assert '<td class="num partitions">3</td>' in dom
        # The script measured rates from two polls (3 s apart in virtual time).
        assert "rec/s" in dom, dom

        dom = page("topic", f"/console/topic?name={topic}")
        assert '<dd id="partition-count">3</dd>' in dom
        assert f"<td class=\"num\">{end0}</td>" in dom  # partition 0's high watermark

        dom = page("groups", "/console/groups")
        assert f'<tr data-group="{group}">' in dom
        assert f'<td class="num lag">{end0 - 2}</td>' in dom

        dom = page("group", f"/console/group?id={group}")
        assert f'<dd id="total-lag">{end0 - 2}</dd>' in dom
        assert f'data-tp="{topic}:0">{end0 - 2}</td>' in dom
        assert "console-test-client" in dom
        assert '<polyline points="' in dom and 'data-series="total"' in dom, "the lag plot was not drawn"

        dom = page("messages", f"/console/messages?topic={topic}&partition=0&offset=9&limit=10")
        assert "<td class=\"num\">9</td>" in dom and "value-27" in dom
        # The hostile record is text: no element came of it.
        assert "<img" not in dom and "<script>alert" not in dom
        assert "&lt;img src=x onerror=alert(1)&gt;" in dom
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in dom
        # Bytes that are not UTF-8 are escaped.
        assert "\\x00\\xff" in dom
        assert "\\x00\\x01\\xfe\\xfftail" in dom
        assert "\\xde\\xad&lt;\\xbe\\xef" in dom

        dom = headless(browser, base + f"/console/messages?topic={topic}&partition=1&offset=10", "--dump-dom")
        headers = dom.split('<td class="headers">')[1].split("</td>")[0]
        assert '<span class="escaped" title="not UTF-8 text: bytes escaped">\\xff\\xfe</span>' in headers, headers
        assert headers.count('<span class="text">dup</span>') == 2, headers
    finally:
        c.close()

    # Plain HTTP: the redirect, the headers, the JSON twin, refusals with reasons.
    status, headers, _ = get(base + "/")
    assert status == 302 and headers["Location"] == "/console/"
    status, headers, body = get(base + "/console/topics")
    assert status == 200 and "script-src 'self'" in headers["Content-Security-Policy"]
    status, _, body = get(base + f"/console/api/messages?topic={topic}&partition=0&offset=10&limit=2")
    assert status == 200
    recs = json.loads(body)["result"]["records"]
    assert recs[0]["value"] == {"kind": "text", "text": HOSTILE_VALUE, "cut": 0}
    assert recs[1]["key"]["kind"] == "escaped"
    for path, why in [
        (f"/console/messages?topic={topic}&limit=1000", "between 1 and 100"),
        (f"/console/messages?topic={topic}&partition=x", "not an integer"),
        (f"/console/messages?topic={topic}&offset=1&timestamp=2", "not both"),
        (f"/console/messages?topic={topic}&timestamp=yesterday", "cannot read"),
        ("/console/topic", "missing"),
    ]:
        status, _, body = get(base + path)
        assert status == 400 and why in body, (path, status, body)
    status, _, body = get(base + f"/console/api/messages?topic={topic}&partition=7")
    assert status == 404 and "has 3 partitions" in json.loads(body)["error"]
    status, _, _ = get(base + "/console/no-such-page")
    assert status == 404
    b.assert_alive()


def test_console_off_leaves_metrics_on(broker_factory):
    port = free_port()
    broker_factory("--metrics-listen", f"127.0.0.1:{port}", "--console", "false")
    base = f"http://127.0.0.1:{port}"
    assert get(base + "/console/")[0] == 404
    assert get(base + "/")[0] == 404
    status, _, body = get(base + "/metrics")
    assert status == 200 and "phxq_ready" in body


def test_console_on_a_cluster_shows_what_each_broker_knows(cluster, topic):
    """Each node's console lists the three brokers; of a topic's partitions, those the node
    leads come with offsets, the others with their leader's id (README: Web console)."""
    from phxq_wire import wait_for
    cluster.create_topic(topic, 6)
    ports = cluster.metrics_ports

    def views():
        out = {}
        for node, port in ports.items():
            status, _, body = get(f"http://127.0.0.1:{port}/console/api/topic?name={topic}")
            if status != 200:
                return None
            out[node] = json.loads(body)["partitions"]
        # Every node agrees on the leaders, and each partition is led by one node.
        leaders = {tuple(p["leader"] for p in parts) for parts in out.values()}
        return out if len(leaders) == 1 and None not in next(iter(leaders)) else None
    seen = wait_for(views, 30, what="every node's console naming the same leaders")
    for node, parts in seen.items():
        for p in parts:
            here = p["leader"] == node
            assert (p["high_watermark"] is not None) == here, (node, p)
        status, _, body = get(f"http://127.0.0.1:{ports[node]}/console/api/cluster")
        assert status == 200 and sorted(b["id"] for b in json.loads(body)["brokers"]) == [1, 2, 3]
    # The message browser of a partition led elsewhere says who leads it.
    node, other = next((n, p) for n, parts in seen.items() for p in parts if p["leader"] != n)
    status, _, body = get(f"http://127.0.0.1:{ports[node]}/console/api/messages?topic={topic}"
                          f"&partition={other['partition']}")
    assert status == 503 and f"its leader is node {other['leader']}" in json.loads(body)["error"], body
