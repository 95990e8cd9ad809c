"""Raw consumer-group requests (non-flexible versions, request header v1) for tests that
must act like a precise, possibly misbehaving, group member: a zombie, a member
committing partitions it does not own, a member checking generations."""

from __future__ import annotations

from phxq_wire import Conn, Dec, Enc

FIND_COORDINATOR, JOIN_GROUP, HEARTBEAT, LEAVE_GROUP, SYNC_GROUP = 10, 11, 12, 13, 14
OFFSET_COMMIT, OFFSET_FETCH, DESCRIBE_GROUPS, DELETE_GROUPS, OFFSET_DELETE = 8, 9, 15, 42, 47

NONE = 0
ILLEGAL_GENERATION = 22
UNKNOWN_MEMBER_ID = 25
REBALANCE_IN_PROGRESS = 27
NON_EMPTY_GROUP = 68
GROUP_ID_NOT_FOUND = 69
MEMBER_ID_REQUIRED = 79
FENCED_INSTANCE_ID = 82
GROUP_SUBSCRIBED_TO_TOPIC = 86


def subscription(topics: list[str]) -> bytes:
    """ConsumerProtocolSubscription v0."""
    return Enc().i16(0).array(topics, lambda e, t: e.string(t)).bytes_(None).build()


def assignment(parts: dict[str, list[int]]) -> bytes:
    """ConsumerProtocolAssignment v0."""
    return (Enc().i16(0)
            .array(list(parts.items()), lambda e, tp: e.string(tp[0]).array(tp[1], lambda e2, p: e2.i32(p)))
            .bytes_(None).build())


class GroupConn(Conn):
    def find_coordinator_v1(self, group: str) -> tuple[int, int]:
        """(error, coordinator node id) for a consumer group."""
        d = self.call(FIND_COORDINATOR, 1, Enc().string(group).i8(0).build())
        d.i32()
        err = d.i16()
        d.string()  # error message
        node = d.i32()
        return err, node

    def join_v5(self, group: str, member_id: str = "", topics: list[str] | None = None,
                session_ms: int = 3000, rebalance_ms: int = 5000, instance_id: str | None = None,
                protocol: str = "range") -> dict:
        meta = subscription(topics or [])
        body = (Enc().string(group).i32(session_ms).i32(rebalance_ms).string(member_id).string(instance_id)
                .string("consumer").array([(protocol, meta)], lambda e, p: e.string(p[0]).bytes_(p[1])).build())
        d = self.call(JOIN_GROUP, 5, body)
        d.i32()
        r = {"error": d.i16(), "generation": d.i32(), "protocol": d.string(), "leader": d.string(),
             "member_id": d.string()}
        r["members"] = d.array(lambda x: (x.string(), x.string(), x.bytes_()))
        return r

    def join(self, group: str, **kw) -> dict:
        """JoinGroup v5 twice when the coordinator asks for a member id first."""
        r = self.join_v5(group, **kw)
        if r["error"] == MEMBER_ID_REQUIRED:
            kw["member_id"] = r["member_id"]
            r = self.join_v5(group, **kw)
        return r

    def sync_v3(self, group: str, generation: int, member_id: str,
                assignments: dict[str, bytes] | None = None, instance_id: str | None = None) -> tuple[int, bytes]:
        body = (Enc().string(group).i32(generation).string(member_id).string(instance_id)
                .array(list((assignments or {}).items()), lambda e, a: e.string(a[0]).bytes_(a[1])).build())
        d = self.call(SYNC_GROUP, 3, body)
        d.i32()
        return d.i16(), d.bytes_()

    def heartbeat_v3(self, group: str, generation: int, member_id: str, instance_id: str | None = None) -> int:
        body = Enc().string(group).i32(generation).string(member_id).string(instance_id).build()
        d = self.call(HEARTBEAT, 3, body)
        d.i32()
        return d.i16()

    def leave_v3(self, group: str, member_ids: list[str]) -> tuple[int, list[int]]:
        body = Enc().string(group).array(member_ids, lambda e, m: e.string(m).string(None)).build()
        d = self.call(LEAVE_GROUP, 3, body)
        d.i32()
        err = d.i16()
        return err, [x[2] for x in d.array(lambda x: (x.string(), x.string(), x.i16()))]

    def commit_v7(self, group: str, generation: int, member_id: str,
                  offsets: dict[tuple[str, int], int], metadata: str | None = "",
                  instance_id: str | None = None, leader_epoch: int = -1) -> dict[tuple[str, int], int]:
        by_topic: dict[str, list[tuple[int, int]]] = {}
        for (t, p), o in offsets.items():
            by_topic.setdefault(t, []).append((p, o))
        body = (Enc().string(group).i32(generation).string(member_id).string(instance_id)
                .array(list(by_topic.items()), lambda e, tp: e.string(tp[0]).array(
                    tp[1], lambda e2, po: e2.i32(po[0]).i64(po[1]).i32(leader_epoch).string(metadata)))
                .build())
        d = self.call(OFFSET_COMMIT, 7, body)
        d.i32()
        out = {}
        for name, parts in d.array(lambda x: (x.string(), x.array(lambda y: (y.i32(), y.i16())))):
            for p, err in parts:
                out[(name, p)] = err
        return out

    def fetch_v5(self, group: str, topics: dict[str, list[int]] | None) -> tuple[int, dict]:
        """(error, {(topic, partition): (offset, leader_epoch, metadata, error)})"""
        items = None if topics is None else list(topics.items())
        body = (Enc().string(group)
                .array(items, lambda e, tp: e.string(tp[0]).array(tp[1], lambda e2, p: e2.i32(p))).build())
        d = self.call(OFFSET_FETCH, 5, body)
        d.i32()
        out = {}
        for name, parts in d.array(lambda x: (x.string(), x.array(
                lambda y: (y.i32(), y.i64(), y.i32(), y.string(), y.i16())))):
            for p, o, ep, meta, err in parts:
                out[(name, p)] = (o, ep, meta, err)
        return d.i16(), out

    def offset_delete_v0(self, group: str, parts: dict[str, list[int]]) -> tuple[int, dict]:
        body = (Enc().string(group)
                .array(list(parts.items()), lambda e, tp: e.string(tp[0]).array(tp[1], lambda e2, p: e2.i32(p)))
                .build())
        d = self.call(OFFSET_DELETE, 0, body)
        err = d.i16()
        d.i32()
        out = {}
        for name, ps in d.array(lambda x: (x.string(), x.array(lambda y: (y.i32(), y.i16())))):
            for p, e in ps:
                out[(name, p)] = e
        return err, out

    def delete_groups_v1(self, groups: list[str]) -> dict[str, int]:
        body = Enc().array(groups, lambda e, g: e.string(g)).build()
        d = self.call(DELETE_GROUPS, 1, body)
        d.i32()
        return dict(d.array(lambda x: (x.string(), x.i16())))


def form_group(conns: list[GroupConn], group: str, topic: str, plan: list[list[int]], **kw) -> tuple[int, list[str]]:
    """Joins one member per connection (concurrently, so they land in one generation) and
    syncs with `plan[i]` as member i's partitions. Returns (generation, member ids)."""
    import threading

    results: list[dict | None] = [None] * len(conns)

    def join(i):
        results[i] = conns[i].join(group, topics=[topic], **kw)

    threads = [threading.Thread(target=join, args=(i,)) for i in range(len(conns))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert all(r is not None and r["error"] == NONE for r in results), results
    gen = results[0]["generation"]
    assert all(r["generation"] == gen for r in results), results
    ids = [r["member_id"] for r in results]
    leader = results[0]["leader"]
    plan_by_id = {ids[i]: assignment({topic: plan[i]}) for i in range(len(conns))}
    syncs: list[tuple[int, bytes] | None] = [None] * len(conns)

    def sync(i):
        syncs[i] = conns[i].sync_v3(group, gen, ids[i], plan_by_id if ids[i] == leader else None)

    threads = [threading.Thread(target=sync, args=(i,)) for i in range(len(conns))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert all(s is not None and s[0] == NONE for s in syncs), syncs
    return gen, ids


def decode_assignment(b: bytes) -> dict[str, list[int]]:
    if not b:
        return {}
    d = Dec(b)
    d.i16()
    return dict(d.array(lambda x: (x.string(), x.array(Dec.i32))))
