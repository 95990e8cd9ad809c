// One kafkajs consumer in a consumer group, run as its own process so a test can kill -9
// it. argv: BOOTSTRAP TOPIC GROUP SESSION_MS. Prints the same JSON lines as
// compat-tests/python/group_consumer.py ("assigned" after each join, "msg" per record)
// and commits (auto-commit after each message is handled). SIGTERM disconnects cleanly.
const { Kafka, logLevel } = require('kafkajs')

const [bootstrap, topic, groupId, sessionMs] = process.argv.slice(2)
const session = parseInt(sessionMs || '3000', 10)
const out = o => process.stdout.write(JSON.stringify(o) + '\n')

const kafka = new Kafka({
  clientId: 'phxq-compat-kafkajs-group',
  brokers: [bootstrap],
  logLevel: logLevel.WARN,
  logCreator: () => ({ namespace, label, log }) => {
    process.stderr.write(`[kafkajs ${label} ${namespace}] ${JSON.stringify(log)}\n`)
  },
})

async function run() {
  const consumer = kafka.consumer({
    groupId,
    sessionTimeout: session,
    heartbeatInterval: Math.max(100, Math.floor(session / 6)),
    rebalanceTimeout: 10000,
    metadataMaxAge: 1000,
    // kafkajs heartbeats between fetches: a short long-poll lets it notice a rebalance
    // quickly (the default, 5 s, delays every rebalance by up to that much).
    maxWaitTimeInMs: 500,
  })
  consumer.on(consumer.events.GROUP_JOIN, e => {
    const parts = (e.payload.memberAssignment[topic] || []).slice().sort((a, b) => a - b)
    out({ ev: 'assigned', parts })
  })
  await consumer.connect()
  await consumer.subscribe({ topics: [topic], fromBeginning: true })
  let stopping = false
  process.on('SIGTERM', async () => {
    if (stopping) return
    stopping = true
    await consumer.disconnect().catch(() => {})
    process.exit(0)
  })
  await consumer.run({
    autoCommit: true,
    autoCommitInterval: 100,
    eachMessage: async ({ partition, message }) => {
      out({ ev: 'msg', p: partition, o: Number(message.offset), v: message.value.toString() })
    },
  })
}

run().catch(err => {
  process.stderr.write(`FAILED: ${err && err.stack ? err.stack : err}\n`)
  process.exit(1)
})
