// Produce and consume over SASL_SSL / SASL_PLAINTEXT with kafkajs (test_security.py).
// Spec: { brokers, topic, ssl: {ca} | null, sasl: {mechanism, username, password}, n }
// Result: { values: [...] } as read back from partition 0.
const { Kafka, logLevel } = require('kafkajs')
const { main } = require('./common')

main(async spec => {
  const kafka = new Kafka({
    clientId: 'phxq-compat-kafkajs-secure',
    brokers: spec.brokers,
    ssl: spec.ssl ? { ca: [spec.ssl.ca], rejectUnauthorized: true } : false,
    sasl: spec.sasl,
    logLevel: logLevel.WARN,
    logCreator: () => ({ namespace, label, log }) => {
      process.stderr.write(`[kafkajs ${label} ${namespace}] ${JSON.stringify(log)}\n`)
    },
    retry: { retries: spec.retries === undefined ? 5 : spec.retries },
  })
  const admin = kafka.admin()
  await admin.connect()
  await admin.createTopics({ topics: [{ topic: spec.topic, numPartitions: 1 }] })
  await admin.disconnect()
  const producer = kafka.producer()
  await producer.connect()
  const messages = []
  for (let i = 0; i < spec.n; i++) messages.push({ value: `js${i}` })
  await producer.send({ topic: spec.topic, messages })
  await producer.disconnect()
  const consumer = kafka.consumer({ groupId: `g-${spec.topic}` })
  await consumer.connect()
  await consumer.subscribe({ topic: spec.topic, fromBeginning: true })
  const values = []
  await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`read ${values.length} of ${spec.n}`)), 30000)
    consumer.run({
      eachMessage: async ({ message }) => {
        values.push(message.value.toString())
        if (values.length >= spec.n) {
          clearTimeout(timer)
          resolve()
        }
      },
    })
  })
  await consumer.disconnect()
  return { values }
})
