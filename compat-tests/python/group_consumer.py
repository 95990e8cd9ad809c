"""One high-level consumer in a consumer group, run as its own process so a test can
kill -9 it. Subscribes to a topic with the given client library, prints JSON lines on
stdout and commits after printing (so everything committed was printed first):

    {"ev": "assigned", "parts": [0, 3]}     its whole assignment, after every change
    {"ev": "msg", "p": 0, "o": 17}          a record (value checked against "v<p>-<o>")
    {"ev": "commit_error", "error": "..."}  a failed commit (e.g. during a rebalance)

SIGTERM closes the consumer cleanly (LeaveGroup). Usage:
    group_consumer.py CLIENT BOOTSTRAP TOPIC GROUP [--assignor NAME] [--session-ms N] [--instance-id ID]
CLIENT is confluent, kafka-python or aiokafka.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import sys

stop = False


def out(**kw):
    sys.stdout.write(json.dumps(kw) + "\n")
    sys.stdout.flush()


def on_term(*_):
    global stop
    stop = True


def run_confluent(a):
    from confluent_kafka import Consumer

    c = Consumer({
        "bootstrap.servers": a.bootstrap,
        "group.id": a.group,
        "auto.offset.reset": "earliest",
        "enable.auto.commit": False,
        "session.timeout.ms": a.session_ms,
        "heartbeat.interval.ms": max(100, a.session_ms // 6),
        "partition.assignment.strategy": a.assignor,
        "topic.metadata.refresh.interval.ms": 1000,
        **({"group.instance.id": a.instance_id} if a.instance_id else {}),
    })

    def changed(consumer, _parts):
        out(ev="assigned", parts=sorted(tp.partition for tp in consumer.assignment()))

    def on_assign(consumer, parts):
        if a.assignor == "cooperative-sticky":
            consumer.incremental_assign(parts)
        else:
            consumer.assign(parts)
        changed(consumer, parts)

    def on_revoke(consumer, parts):
        if a.assignor == "cooperative-sticky":
            consumer.incremental_unassign(parts)
        else:
            consumer.unassign()
        changed(consumer, parts)

    c.subscribe([a.topic], on_assign=on_assign, on_revoke=on_revoke, on_lost=on_revoke)
    try:
        while not stop:
            msgs = c.consume(100, 0.2)
            good = [m for m in msgs if not m.error()]
            for m in good:
                out(ev="msg", p=m.partition(), o=m.offset(), v=m.value().decode())
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
    a = p.parse_args()
    signal.signal(signal.SIGTERM, on_term)
    {"confluent": run_confluent, "kafka-python": run_kafka_python, "aiokafka": run_aiokafka}[a.client](a)


if __name__ == "__main__":
    main()
