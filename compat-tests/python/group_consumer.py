"""One high-level consumer in a consumer group, run as its own process so a test can
kill -9 it. Subscribes to a topic with the given client library, prints JSON lines on
stdout and commits after printing (so everything committed was printed first):

    {"ev": "assigned", "parts": [0, 3]}     its whole assignment, after every change
    {"ev": "msg", "p": 0, "o": 17, "t": ..}  a record (value checked against "v<p>-<o>")
    {"ev": "commit_error", "error": "..."}  a failed commit (e.g. during a rebalance)

SIGTERM closes the consumer cleanly (LeaveGroup). Usage:
    group_consumer.py CLIENT BOOTSTRAP TOPIC GROUP [--assignor NAME] [--session-ms N] [--instance-id ID]
        [--protocol classic|consumer] [--remote-assignor NAME] [--sleep-per-record-ms N]
CLIENT is confluent, kafka-python or aiokafka. `--protocol consumer` (confluent only) is
KIP-848's group.protocol=consumer: the broker assigns (`--remote-assignor` is
group.remote.assignor), session and heartbeat settings are the broker's, and the
assignment changes incrementally; "assigned" events then also carry "tps": [[topic, p]..].
TOPIC starting with "^" is a regex subscription. `--sleep-per-record-ms` makes a slow
consumer (it sleeps after each record, before committing).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import sys
import time

stop = False


def out(**kw):
    sys.stdout.write(json.dumps(kw) + "\n")
    sys.stdout.flush()


def on_term(*_):
    global stop
    stop = True


def run_confluent(a):
    from confluent_kafka import Consumer

    conf = {
        "bootstrap.servers": a.bootstrap,
        "group.id": a.group,
        "auto.offset.reset": "earliest",
        "enable.auto.commit": False,
        "topic.metadata.refresh.interval.ms": 1000,
        **({"group.instance.id": a.instance_id} if a.instance_id else {}),
    }
    if a.protocol == "consumer":
        conf["group.protocol"] = "consumer"
        if a.remote_assignor:
            conf["group.remote.assignor"] = a.remote_assignor
    else:
        conf.update({"session.timeout.ms": a.session_ms, "heartbeat.interval.ms": max(100, a.session_ms // 6),
                     "partition.assignment.strategy": a.assignor})
    c = Consumer(conf)
    incremental = a.assignor == "cooperative-sticky" or a.protocol == "consumer"

    def changed(consumer, _parts):
        tps = sorted((tp.topic, tp.partition) for tp in consumer.assignment())
        out(ev="assigned", parts=sorted(p for _, p in tps), tps=tps)

    def on_assign(consumer, parts):
        if incremental:
            consumer.incremental_assign(parts)
        else:
            consumer.assign(parts)
        changed(consumer, parts)

    def on_revoke(consumer, parts):
        if incremental:
            consumer.incremental_unassign(parts)
        else:
            consumer.unassign()
        changed(consumer, parts)

    c.subscribe([a.topic], on_assign=on_assign, on_revoke=on_revoke, on_lost=on_revoke)
    try:
        while not stop:
            msgs = c.consume(10 if a.sleep_per_record_ms else 100, 0.2)
            good = [m for m in msgs if not m.error()]
            for m in good:
                out(ev="msg", p=m.partition(), o=m.offset(), v=m.value().decode(), t=m.topic())
                if a.sleep_per_record_ms:
                    time.sleep(a.sleep_per_record_ms / 1000)
            if good:
                try:
                    c.commit(asynchronous=False)
                except Exception as e:  # noqa: BLE001 - reported, the test decides
                    out(ev="commit_error", error=str(e))
    finally:
        c.close()


def run_kafka_python(a):
    from kafka import ConsumerRebalanceListener, KafkaConsumer

    c = KafkaConsumer(
        bootstrap_servers=a.bootstrap,
        group_id=a.group,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        session_timeout_ms=a.session_ms,
        heartbeat_interval_ms=max(100, a.session_ms // 6),
        metadata_max_age_ms=1000,
    )

    class L(ConsumerRebalanceListener):
        def on_partitions_revoked(self, revoked):
            out(ev="assigned", parts=[])

        def on_partitions_assigned(self, assigned):
            out(ev="assigned", parts=sorted(tp.partition for tp in assigned))

    c.subscribe([a.topic], listener=L())
    try:
        while not stop:
            batch = c.poll(timeout_ms=200)
            n = 0
            for _tp, msgs in batch.items():
                for m in msgs:
                    out(ev="msg", p=m.partition, o=m.offset, v=m.value.decode())
                    n += 1
            if n:
                try:
                    c.commit()
                except Exception as e:  # noqa: BLE001
                    out(ev="commit_error", error=repr(e))
    finally:
        c.close()


def run_aiokafka(a):
    from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener

    class L(ConsumerRebalanceListener):
        async def on_partitions_revoked(self, revoked):
            out(ev="assigned", parts=[])

        async def on_partitions_assigned(self, assigned):
            out(ev="assigned", parts=sorted(tp.partition for tp in assigned))

    async def run():
        c = AIOKafkaConsumer(
            bootstrap_servers=a.bootstrap,
            group_id=a.group,
            auto_offset_reset="earliest",
            enable_auto_commit=False,
            session_timeout_ms=a.session_ms,
            heartbeat_interval_ms=max(100, a.session_ms // 6),
            metadata_max_age_ms=1000,
        )
        await c.start()
        c.subscribe([a.topic], listener=L())
        try:
            while not stop:
                batch = await c.getmany(timeout_ms=200)
                n = 0
                for _tp, msgs in batch.items():
                    for m in msgs:
                        out(ev="msg", p=m.partition, o=m.offset, v=m.value.decode())
                        n += 1
                if n:
                    try:
                        await c.commit()
                    except Exception as e:  # noqa: BLE001
                        out(ev="commit_error", error=repr(e))
        finally:
            await c.stop()

    asyncio.run(run())


def main():
    p = argparse.ArgumentParser()
    p.add_argument("client", choices=["confluent", "kafka-python", "aiokafka"])
    p.add_argument("bootstrap")
    p.add_argument("topic")
    p.add_argument("group")
    p.add_argument("--assignor", default="range")
    p.add_argument("--session-ms", type=int, default=3000)
    p.add_argument("--instance-id", help="group.instance.id (static membership; confluent only)")
    p.add_argument("--protocol", choices=["classic", "consumer"], default="classic",
                   help="group.protocol (consumer: KIP-848; confluent only)")
    p.add_argument("--remote-assignor", help="group.remote.assignor (with --protocol consumer)")
    p.add_argument("--sleep-per-record-ms", type=float, default=0, help="a slow consumer (confluent only)")
    a = p.parse_args()
    signal.signal(signal.SIGTERM, on_term)
    {"confluent": run_confluent, "kafka-python": run_kafka_python, "aiokafka": run_aiokafka}[a.client](a)


if __name__ == "__main__":
    main()
