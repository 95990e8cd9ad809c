// Registers kafkajs compression codecs for snappy, lz4 and zstd (gzip is built in).
//  - snappy: kafkajs-snappy (the codec kafkajs' docs point to; pure JS via snappyjs)
//  - lz4:    lz4js (pure JS, LZ4 frame format as Kafka uses it)
//  - zstd:   @bokuweb/zstd-wasm (zstd compiled to WebAssembly, shipped in the npm package)
// Pure JS / wasm on purpose: the native codec packages (kafkajs-lz4 -> lz4 0.6,
// @kafkajs/zstd -> cppzst) do not compile against Node 20's headers.
const { CompressionTypes, CompressionCodecs } = require('kafkajs')
const SnappyCodec = require('kafkajs-snappy')
const lz4 = require('lz4js')
const zstd = require('@bokuweb/zstd-wasm')

let zstdReady = null
const zstdInit = () => (zstdReady = zstdReady || zstd.init())

CompressionCodecs[CompressionTypes.Snappy] = SnappyCodec
CompressionCodecs[CompressionTypes.LZ4] = () => ({
  async compress(encoder) {
    return Buffer.from(lz4.compress(encoder.buffer))
  },
  async decompress(buffer) {
    return Buffer.from(lz4.decompress(buffer))
  },
})
CompressionCodecs[CompressionTypes.ZSTD] = () => ({
  async compress(encoder) {
    await zstdInit()
    return Buffer.from(zstd.compress(encoder.buffer, 3))
  },
  async decompress(buffer) {
    await zstdInit()
    return Buffer.from(zstd.decompress(buffer))
  },
})

const byName = {
  none: CompressionTypes.None,
  gzip: CompressionTypes.GZIP,
  snappy: CompressionTypes.Snappy,
  lz4: CompressionTypes.LZ4,
  zstd: CompressionTypes.ZSTD,
}

module.exports = { compressionType: name => {
  if (!(name in byName)) throw new Error(`unknown compression ${name}`)
  return byName[name]
} }
