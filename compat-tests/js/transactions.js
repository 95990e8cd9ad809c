// Kafka transactions (KIP-98) with kafkajs, driven by
// compat-tests/python/test_transactions_clients.py.
// stdin: {brokers, op, ...}; prints one JSON result.
//
// op "txn": {topic, partitions, perPartition, transactionalId}
//   A transactional producer commits "c1-*", sends and aborts "aborted-*" (each send is
//   acknowledged before the abort, so the aborted records are in the log), commits
//   "c2-*"; then a plain producer appends one "END" sentinel per partition. A read_committed
//   and a read_uncommitted consumer each read every partition from the beginning up to its
//   sentinel. Result: {committed: [[p, offset, value]...], uncommitted: [...]} (the sentinel
//   included, last on each partition).
//
// op "ctp": {input, output, group, transactionalId, count}
//   Consume-transform-produce: a consumer in `group` reads `count` input records; for each
//   batch a transaction writes the upper-cased values to `output` (same partition) together
//   with the group's offsets (transaction.sendOffsets) and commits. Result: {processed}.
const { client, main } = require('./common')

async function consumeToSentinel(kafka, topic, partitions, readUncommitted, groupId) {
  const consumer = kafka.consumer({ groupId, readUncommitted, maxWaitTimeInMs: 200 })
  await consumer.connect()
  await consumer.subscribe({ topics: [topic], fromBeginning: true })
  const out = []
  const done = new Set()
  let finish
  const finished = new Promise(resolve => { finish = resolve })
  await consumer.run({
    autoCommit: false,
    eachMessage: async ({ partition, message }) => {
      if (done.has(partition)) return
      const value = message.value === null ? null : message.value.toString()
      out.push([partition, Number(message.offset), value])
      if (value === 'END') {
        done.add(partition)
        if (done.size === partitions) finish()
      }
    },
  })
  const timer = new Promise((_, reject) => setTimeout(
    () => reject(new Error(`${readUncommitted ? 'read_uncommitted' : 'read_committed'} consumer: ` +
      `sentinel seen on ${[...done]} only, ${out.length} records`)), 20000))
  try {
    await Promise.race([finished, timer])
  } finally {
    await consumer.disconnect()
  }
  return out
}

async function txn(kafka, spec) {
  const { topic, partitions, perPartition } = spec
  const producer = kafka.producer({
    transactionalId: spec.transactionalId,
    idempotent: true,
    maxInFlightRequests: 1,
  })
  await producer.connect()
  const records = tag => {
    const msgs = []
    for (let i = 0; i < partitions * perPartition; i++) {
      msgs.push({ partition: i % partitions, key: `${tag}-${i}`, value: `${tag}-${i}` })
    }
    return msgs
  }
  for (const [tag, end] of [['c1', 'commit'], ['aborted', 'abort'], ['c2', 'commit']]) {
    const t = await producer.transaction()
    // kafkajs resolves send() once the broker acknowledged the records
    await t.send({ topic, acks: -1, messages: records(tag) })
    if (end === 'commit') await t.commit()
    else await t.abort()
  }
  await producer.disconnect()

  const plain = kafka.producer()
  await plain.connect()
  const sentinels = []
  for (let p = 0; p < partitions; p++) sentinels.push({ partition: p, value: 'END' })
  await plain.send({ topic, acks: -1, messages: sentinels })
  await plain.disconnect()

  const committed = await consumeToSentinel(kafka, topic, partitions, false, `${topic}-rc`)
  const uncommitted = await consumeToSentinel(kafka, topic, partitions, true, `${topic}-ru`)
  return { committed, uncommitted }
}

async function ctp(kafka, spec) {
  const { input, output, group, count } = spec
  const producer = kafka.producer({
    transactionalId: spec.transactionalId,
    idempotent: true,
    maxInFlightRequests: 1,
  })
  await producer.connect()
  const consumer = kafka.consumer({ groupId: group, maxWaitTimeInMs: 200 })
  await consumer.connect()
  await consumer.subscribe({ topics: [input], fromBeginning: true })
  let processed = 0
  let finish
  let fail
  const finished = new Promise((resolve, reject) => { finish = resolve; fail = reject })
  await consumer.run({
    autoCommit: false,
    eachBatchAutoResolve: false,
    eachBatch: async ({ batch, resolveOffset, heartbeat }) => {
      if (batch.messages.length === 0) return
      try {
        const t = await producer.transaction()
        await t.send({
          topic: output,
          acks: -1,
          messages: batch.messages.map(m => ({
            partition: batch.partition,
            key: m.key,
            value: m.value.toString().toUpperCase(),
          })),
        })
        const last = batch.messages[batch.messages.length - 1]
        await t.sendOffsets({
          consumerGroupId: group,
          topics: [{
            topic: batch.topic,
            partitions: [{ partition: batch.partition, offset: (BigInt(last.offset) + 1n).toString() }],
          }],
        })
        await t.commit()
        for (const m of batch.messages) resolveOffset(m.offset)
        await heartbeat()
        processed += batch.messages.length
        if (processed >= count) finish()
      } catch (e) {
        fail(e)
        throw e
      }
    },
  })
  const timer = new Promise((_, reject) => setTimeout(
    () => reject(new Error(`processed only ${processed} of ${count} records`)), 20000))
  try {
    await Promise.race([finished, timer])
  } finally {
    await consumer.disconnect()
    await producer.disconnect()
  }
  return { processed }
}

main(async spec => {
  const kafka = client(spec)
  if (spec.op === 'txn') return txn(kafka, spec)
  if (spec.op === 'ctp') return ctp(kafka, spec)
  throw new Error(`unknown op ${spec.op}`)
})
