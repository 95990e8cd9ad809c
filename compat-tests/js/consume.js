// Consume a topic with a kafkajs group consumer until every partition reaches a given end
// offset (or a timeout), and report what came back and how large each Fetch response was.
// stdin: {brokers, topic, groupId, end: {partition: endOffset}, timeoutMs,
//         consumer: {...kafkajs consumer options, e.g. maxBytes, maxBytesPerPartition}}
// stdout: {records: [[partition, offset, value (utf8) or null]], fetchResponseSizes: [bytes],
//          timedOut, crashes: [message]}
// fetchResponseSizes are the sizes of the Fetch response frames kafkajs received (the
// network REQUEST instrumentation event), protocol overhead included.
const { client, main } = require('./common')

main(async spec => {
  const kafka = client(spec)
  const consumer = kafka.consumer({
    groupId: spec.groupId,
    sessionTimeout: 6000,
    heartbeatInterval: 1000,
    maxWaitTimeInMs: 200,
    ...spec.consumer,
  })
  const records = []
  const fetchResponseSizes = []
  const crashes = []
  const next = {}
  for (const p of Object.keys(spec.end)) next[p] = 0
  const done = () => Object.keys(spec.end).every(p => next[p] >= spec.end[p])

  consumer.on(consumer.events.REQUEST, e => {
    if (e.payload.apiName === 'Fetch') fetchResponseSizes.push(e.payload.size)
  })
  consumer.on(consumer.events.CRASH, e => crashes.push(String(e.payload.error)))

  let finish
  const finished = new Promise(resolve => { finish = resolve })
  const timer = setTimeout(() => finish(true), spec.timeoutMs || 30000)

  await consumer.connect()
  await consumer.subscribe({ topics: [spec.topic], fromBeginning: true })
  await consumer.run({
    autoCommit: false,
    eachBatch: async ({ batch, resolveOffset }) => {
      for (const m of batch.messages) {
        const o = Number(m.offset)
        records.push([batch.partition, o, m.value === null ? null : m.value.toString()])
        next[batch.partition] = o + 1
        resolveOffset(m.offset)
      }
      if (done()) finish(false)
    },
  })
  if (done()) finish(false)
  const timedOut = await finished
  clearTimeout(timer)
  await consumer.disconnect()
  return { records, fetchResponseSizes, timedOut, crashes }
})
