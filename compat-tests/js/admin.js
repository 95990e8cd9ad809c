// kafkajs admin operations. stdin: {brokers, op, args}; prints the result as JSON.
const { client, main } = require('./common')

const ops = {
  async createTopics(admin, a) {
    try {
      const created = await admin.createTopics({
        topics: a.topics.map(t => ({ topic: t.topic, numPartitions: t.numPartitions })),
        waitForLeaders: true,
      })
      return { created }
    } catch (e) {
      // kafkajs raises KafkaJSAggregateError / KafkaJSProtocolError; report the type
      const errors = (e.errors || [e]).map(x => ({ type: x.type, name: x.name, message: x.message }))
      return { error: e.name, errors }
    }
  },
  deleteTopics: (admin, a) => admin.deleteTopics({ topics: a.topics }).then(() => ({ ok: true })),
  createPartitions: (admin, a) =>
    admin.createPartitions({ topicPartitions: [{ topic: a.topic, count: a.count }] }).then(() => ({ ok: true })),
  listTopics: admin => admin.listTopics(),
  fetchTopicMetadata: (admin, a) => admin.fetchTopicMetadata({ topics: a.topics }),
  fetchTopicOffsets: (admin, a) => admin.fetchTopicOffsets(a.topic),
  fetchTopicOffsetsByTimestamp: (admin, a) => admin.fetchTopicOffsetsByTimestamp(a.topic, a.timestamp),
  async deleteTopicRecords(admin, a) {
    // kafkajs' deleteTopicRecords needs the topic's metadata already loaded
    await admin.fetchTopicMetadata({ topics: [a.topic] })
    await admin.deleteTopicRecords({ topic: a.topic, partitions: a.partitions })
    return { ok: true }
  },
  describeConfigs: (admin, a) =>
    admin.describeConfigs({ resources: a.resources, includeSynonyms: false }),
}

main(async spec => {
  const admin = client(spec).admin()
  await admin.connect()
  try {
    return await ops[spec.op](admin, spec.args || {})
  } finally {
    await admin.disconnect()
  }
})
