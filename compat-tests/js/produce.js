// Produce messages with kafkajs and print, per message in input order, the
// {partition, offset} the broker assigned.
// stdin: {brokers, topic, compression, chunk, acks?, idempotent?,
//         messages: [{partition, key, value, headers: [[k, v]], timestamp}]}
// key/value/header values are base64 or null. Equal header keys must be adjacent
// (kafkajs headers are an object; repeated keys become an array value).
const { client, main, b64 } = require('./common')
const { compressionType } = require('./codecs')

function headersObject(pairs) {
  const h = {}
  let last = null
  for (const [k, v] of pairs) {
    const val = b64(v)
    if (k in h) {
      if (k !== last) throw new Error(`header ${k} repeated non-adjacently`)
      h[k] = Array.isArray(h[k]) ? [...h[k], val] : [h[k], val]
    } else {
      h[k] = val
    }
    last = k
  }
  return h
}

main(async spec => {
  const kafka = client(spec)
  const producer = kafka.producer({
    idempotent: !!spec.idempotent,
    maxInFlightRequests: spec.idempotent ? 1 : undefined,
    allowAutoTopicCreation: true,
  })
  await producer.connect()
  const out = []
  const chunk = spec.chunk || 50
  try {
    for (let i = 0; i < spec.messages.length; i += chunk) {
      const part = spec.messages.slice(i, i + chunk)
      const res = await producer.send({
        topic: spec.topic,
        acks: spec.acks === undefined ? -1 : spec.acks,
        compression: compressionType(spec.compression || 'none'),
        messages: part.map(m => ({
          partition: m.partition,
          key: b64(m.key),
          value: b64(m.value),
          headers: headersObject(m.headers || []),
          timestamp: m.timestamp === null ? undefined : String(m.timestamp),
        })),
      })
      const base = {}
      for (const r of res) {
        if (r.errorCode !== 0) throw new Error(`partition ${r.partition} error ${r.errorCode}`)
        base[r.partition] = Number(r.baseOffset)
      }
      const seen = {}
      for (const m of part) {
        const n = seen[m.partition] || 0
        seen[m.partition] = n + 1
        out.push({ partition: m.partition, offset: base[m.partition] + n })
      }
    }
  } finally {
    await producer.disconnect()
  }
  return out
})
