// Shared bits of the kafkajs scripts: read a JSON spec from stdin, build a client
// that logs to stderr (stdout carries only the JSON result).
const { Kafka, logLevel } = require('kafkajs')

async function readSpec() {
  const chunks = []
  for await (const c of process.stdin) chunks.push(c)
  return JSON.parse(Buffer.concat(chunks).toString())
}

function client(spec) {
  return new Kafka({
    clientId: 'phxq-compat-kafkajs',
    brokers: spec.brokers,
    logLevel: logLevel.WARN,
    logCreator: () => ({ namespace, level, label, log }) => {
      process.stderr.write(`[kafkajs ${label} ${namespace}] ${JSON.stringify(log)}\n`)
    },
    retry: { retries: 5 },
  })
}

function main(fn) {
  readSpec()
    .then(fn)
    .then(result => {
      // exit only once the write is flushed: a pipe takes large results in pieces
      process.stdout.write(JSON.stringify(result) + '\n', () => process.exit(0))
    })
    .catch(err => {
      process.stderr.write(`FAILED: ${err && err.stack ? err.stack : err}\n`)
      if (err && err.cause) process.stderr.write(`cause: ${err.cause.stack || err.cause}\n`)
      process.exit(1)
    })
}

const b64 = s => (s === null || s === undefined ? null : Buffer.from(s, 'base64'))

module.exports = { client, main, b64 }
