"""Subprocess for the durability test: produce forever with acks=all and append
one line "partition offset value" to OUT for every acknowledged record, flushed
at once, so whatever is in OUT when this process is SIGKILLed was acknowledged.

usage: durable_producer.py BOOTSTRAP TOPIC OUT PREFIX [idempotent]
"""
import sys

from confluent_kafka import Producer

bootstrap, topic, out_path, prefix = sys.argv[1:5]
idempotent = len(sys.argv) > 5 and sys.argv[5] == "idempotent"
p = Producer({
    "bootstrap.servers": bootstrap,
    "acks": "all",
    "linger.ms": 2,
    "enable.idempotence": idempotent,
    "message.timeout.ms": 120000,
    "reconnect.backoff.ms": 20,
    "reconnect.backoff.max.ms": 200,
})
out = open(out_path, "a")


def on_delivery(err, msg):
    if err is None:
        out.write(f"{msg.partition()} {msg.offset()} {msg.value().decode()}\n")
        out.flush()
    else:
        sys.stderr.write(f"delivery failed: {err}\n")


i = 0
while True:
    try:
        p.produce(topic, value=f"{prefix}-{i}".encode(), key=str(i).encode(), on_delivery=on_delivery)
        i += 1
    except BufferError:
        p.poll(0.05)
        continue
    if len(p) > 2000:
        p.poll(0.01)
    else:
        p.poll(0)
