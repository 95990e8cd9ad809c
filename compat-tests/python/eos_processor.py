"""An exactly-once consume-transform-produce processor (confluent-kafka), run as its own
process so that tests can kill it with kill -9:

    eos_processor.py BOOTSTRAP INPUT OUTPUT GROUP TRANSACTIONAL_ID

It reads INPUT with a read_committed consumer in GROUP (static membership, so a restart
takes over at once), and for every batch writes one output record per input record
(key "partition:offset" of the input, value the input value upper-cased) in a
transaction together with the consumed offsets (send_offsets_to_transaction). On any
error it exits non-zero; whoever runs it starts it again, and init_transactions fences
and aborts what the previous incarnation left open.

A watchdog ends the process when one transaction takes longer than WATCHDOG_S, as a
supervisor's liveness check would: librdkafka's send_offsets_to_transaction() can block
past its own timeout once the group coordinator's connection went down
(confluentinc/librdkafka#5456, #5511), which a broker restart causes."""

from __future__ import annotations

import os
import sys
import threading

from confluent_kafka import Consumer, Producer, TopicPartition

WATCHDOG_S = 20.0


def main() -> int:
    bootstrap, source, sink, group, txn_id = sys.argv[1:6]
    consumer = Consumer({
        "bootstrap.servers": bootstrap,
        "group.id": group,
        "group.instance.id": f"{group}-processor",
        "session.timeout.ms": 6000,
        "isolation.level": "read_committed",
        "enable.auto.commit": False,
        "auto.offset.reset": "earliest",
    })
    producer = Producer({
        "bootstrap.servers": bootstrap,
        "transactional.id": txn_id,
        "transaction.timeout.ms": 10000,
        "linger.ms": 5,
    })
    producer.init_transactions(30)
    consumer.subscribe([source])
    while True:
        batch = consumer.consume(num_messages=500, timeout=0.5)
        batch = [m for m in batch if m.error() is None]
        if not batch:
            continue
        watchdog = threading.Timer(WATCHDOG_S, os._exit, args=(3,))
        watchdog.daemon = True
        watchdog.start()
        producer.begin_transaction()
        for m in batch:
            producer.produce(sink, key=f"{m.partition()}:{m.offset()}".encode(), value=m.value().upper())
        positions = {}
        for m in batch:
            positions[m.partition()] = m.offset() + 1
        offsets = [TopicPartition(source, p, o) for p, o in positions.items()]
        producer.send_offsets_to_transaction(offsets, consumer.consumer_group_metadata(), 30)
        producer.commit_transaction(30)
        watchdog.cancel()


if __name__ == "__main__":
    sys.exit(main())
