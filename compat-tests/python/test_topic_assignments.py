"""CreateTopics and CreatePartitions as tools send them (issue 13, point 4): manual replica
assignments (`kafka-topics --replica-assignment`) mapped onto store groups, validate_only,
and Kafka's error codes, through confluent-kafka's and kafka-python's Admin clients.
"""

from __future__ import annotations

import pytest
from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient, NewPartitions, NewTopic

INVALID_REPLICA_ASSIGNMENT = 39
INVALID_REQUEST = 42


def code(e: KafkaException) -> int:
    return e.args[0].code()


def partitions(admin: AdminClient, topic: str) -> dict[int, tuple[int, list[int]]]:
    md = admin.list_topics(topic, timeout=10).topics[topic]
    return {p.id: (p.leader, list(p.replicas)) for p in md.partitions.values()}


def test_assignments_on_a_single_node(broker, topic):
    # confluent-kafka wants num_partitions to match the assignment; librdkafka sends -1
    # for both counts on the wire, as Kafka requires.
    admin = AdminClient({"bootstrap.servers": broker.bootstrap})
    # validate_only checks and creates nothing.
    admin.create_topics([NewTopic(topic, num_partitions=2, replica_assignment=[[1], [1]])], validate_only=True)[topic].result(10)
    assert topic not in admin.list_topics(timeout=10).topics
    admin.create_topics([NewTopic(topic, num_partitions=2, replica_assignment=[[1], [1]])])[topic].result(10)
    assert partitions(admin, topic) == {0: (1, [1]), 1: (1, [1])}
    # Kafka's codes for what cannot be.
    for bad in ([[2]], [[1, 1]], [[1], [1, 2]]):
        with pytest.raises(KafkaException) as e:
            admin.create_topics([NewTopic(f"{topic}-bad", num_partitions=len(bad), replica_assignment=bad)])[f"{topic}-bad"].result(10)
        assert code(e.value) == INVALID_REPLICA_ASSIGNMENT, (bad, e.value)
    # New partitions with assignments, and validate_only again.
    admin.create_partitions([NewPartitions(topic, 3, replica_assignment=[[1]])], validate_only=True)[topic].result(10)
    assert len(partitions(admin, topic)) == 2
    admin.create_partitions([NewPartitions(topic, 4, replica_assignment=[[1], [1]])])[topic].result(10)
    assert len(partitions(admin, topic)) == 4
    with pytest.raises(KafkaException) as e:
        admin.create_partitions([NewPartitions(topic, 6, replica_assignment=[[1]])])[topic].result(10)
    assert code(e.value) == INVALID_REPLICA_ASSIGNMENT


def test_kafka_python_assignments_and_both_counts_given(broker, topic):
    from kafka import KafkaAdminClient
    from kafka.admin import NewTopic as KNewTopic
    from kafka.errors import InvalidRequestError
    admin = KafkaAdminClient(bootstrap_servers=broker.bootstrap)
    try:
        admin.create_topics([KNewTopic(topic, num_partitions=-1, replication_factor=-1,
                                       replica_assignments={0: [1], 1: [1], 2: [1]})])
        # Partition count and assignments together: INVALID_REQUEST, as in Kafka.
        with pytest.raises(InvalidRequestError):
            admin.create_topics([KNewTopic(f"{topic}-2", num_partitions=2, replication_factor=-1,
                                           replica_assignments={0: [1], 1: [1]})])
    finally:
        admin.close()
    a = AdminClient({"bootstrap.servers": broker.bootstrap})
    assert len(partitions(a, topic)) == 3
    assert f"{topic}-2" not in a.list_topics(timeout=10).topics


def test_assignments_in_a_cluster_follow_the_preferred_leader(cluster, topic):
    """Three brokers, every store group on all three: each partition goes to the store
    group its first broker leads (Kafka's preferred leader)."""
    admin = AdminClient({"bootstrap.servers": cluster.bootstrap})
    seen: dict[str, dict[int, int]] = {}

    def settled() -> bool:
        # The store groups only (group 0 is the metadata group), led by three different
        # brokers, and the same leaders as a second ago (the leader balancer has stopped).
        now = {g: n for g, n in cluster.group_leaders().items() if g != 0}
        before, seen["last"] = seen.get("last"), now
        return len(set(now.values())) == 3 and now == before
    cluster.wait_for(settled, 60, what="store groups led by three different brokers", interval=1.0)
    wanted = [[2, 1, 3], [3, 1, 2], [1, 2, 3]]
    admin.create_topics([NewTopic(topic, num_partitions=3, replica_assignment=wanted)])[topic].result(30)
    got = partitions(admin, topic)
    assert {p: l for p, (l, _) in got.items()} == {0: 2, 1: 3, 2: 1}, got
    assert all(sorted(r) == [1, 2, 3] for _, r in got.values())
    with pytest.raises(KafkaException) as e:
        admin.create_topics([NewTopic(f"{topic}-x", num_partitions=1, replica_assignment=[[1, 4]])])[f"{topic}-x"].result(30)
    assert code(e.value) == INVALID_REPLICA_ASSIGNMENT
