//! `kafka-request`: a broker connection's input path. The bytes are a client's stream:
//! [`phxq_protocol::frame::take_frame`] splits it into frames under the broker's default
//! `socket.request.max.bytes`, and each frame goes through
//! [`phxq_protocol::codec::decode_request`] with the broker's [`SUPPORTED`] ranges, as
//! `broker/src/connection.rs` does.
//!
//! Seeds: for every API and version in [`SUPPORTED`], a frame of the default request and
//! frames of requests with randomized field values. The randomized requests come from the
//! codec itself: a biased random byte string (mostly zeros and small numbers, so counts and
//! lengths are small and strings are text) is decoded as that API and version, and what
//! decodes is encoded again with kafka-protocol's encoders; this fills every kind of field
//! and nested array the version has without a hand-written builder per API. Produce
//! requests carry valid record batches.

use bytes::{BufMut, Bytes, BytesMut};
use fastrand::Rng;
use kafka_protocol::messages::{ApiKey, RequestHeader, RequestKind};
use kafka_protocol::protocol::{Encodable, StrBytes};
use phxq_protocol::codec::decode_request;
use phxq_protocol::frame;
use phxq_protocol::supported::{supported, SUPPORTED};

use super::{stage, Target};

/// The broker's default `socket_request_max_bytes` (`--socket-request-max-bytes`).
pub const SOCKET_REQUEST_MAX_BYTES: usize = 104_857_600;
/// Requests with randomized fields per API version.
const RANDOMIZED_PER_VERSION: usize = 3;

pub struct KafkaRequest;

/// The default request body of `api`: every request the codec knows (what the broker
/// serves changes; this does not need to).
fn default_body(api: ApiKey) -> RequestKind {
    macro_rules! defaults {
        ($($name:ident),* $(,)?) => {
            match api {
                $(ApiKey::$name => RequestKind::$name(Default::default()),)*
            }
        };
    }
    defaults!(
        Produce,
        Fetch,
        ListOffsets,
        Metadata,
        OffsetCommit,
        OffsetFetch,
        FindCoordinator,
        JoinGroup,
        Heartbeat,
        LeaveGroup,
        SyncGroup,
        DescribeGroups,
        ListGroups,
        SaslHandshake,
        ApiVersions,
        CreateTopics,
        DeleteTopics,
        DeleteRecords,
        InitProducerId,
        OffsetForLeaderEpoch,
        AddPartitionsToTxn,
        AddOffsetsToTxn,
        EndTxn,
        WriteTxnMarkers,
        TxnOffsetCommit,
        DescribeAcls,
        CreateAcls,
        DeleteAcls,
        DescribeConfigs,
        AlterConfigs,
        AlterReplicaLogDirs,
        DescribeLogDirs,
        SaslAuthenticate,
        CreatePartitions,
        CreateDelegationToken,
        RenewDelegationToken,
        ExpireDelegationToken,
        DescribeDelegationToken,
        DeleteGroups,
        ElectLeaders,
        IncrementalAlterConfigs,
        AlterPartitionReassignments,
        ListPartitionReassignments,
        OffsetDelete,
        DescribeClientQuotas,
        AlterClientQuotas,
        DescribeUserScramCredentials,
        AlterUserScramCredentials,
        Vote,
        BeginQuorumEpoch,
        EndQuorumEpoch,
        DescribeQuorum,
        AlterPartition,
        UpdateFeatures,
        Envelope,
        FetchSnapshot,
        DescribeCluster,
        DescribeProducers,
        BrokerRegistration,
        BrokerHeartbeat,
        UnregisterBroker,
        DescribeTransactions,
        ListTransactions,
        AllocateProducerIds,
        ConsumerGroupHeartbeat,
        ConsumerGroupDescribe,
        ControllerRegistration,
        GetTelemetrySubscriptions,
        PushTelemetry,
        AssignReplicasToDirs,
        ListConfigResources,
        DescribeTopicPartitions,
        ShareGroupHeartbeat,
        ShareGroupDescribe,
        ShareFetch,
        ShareAcknowledge,
        AddRaftVoter,
        RemoveRaftVoter,
        UpdateRaftVoter,
        InitializeShareGroupState,
        ReadShareGroupState,
        WriteShareGroupState,
        DeleteShareGroupState,
        ReadShareGroupStateSummary,
        DescribeShareGroupOffsets,
        AlterShareGroupOffsets,
        DeleteShareGroupOffsets,
    )
}

/// Mostly zeros and small numbers, some letters, a few arbitrary bytes: decoded as a
/// request, counts and lengths come out small and strings mostly valid UTF-8.
fn biased_bytes(rng: &mut Rng, n: usize) -> Vec<u8> {
    (0..n)
        .map(|_| match rng.u32(0..100) {
            0..=59 => 0,
            60..=84 => rng.u8(1..=3),
            85..=96 => rng.u8(b'a'..=b'z'),
            _ => rng.u8(..),
        })
        .collect()
}

/// A request with randomized field values for `api` at `version`, if one decodes from a
/// few tries of biased bytes.
fn randomized_body(
    api: ApiKey,
    version: i16,
    rng: &mut Rng,
    max_len: usize,
) -> Option<RequestKind> {
    (0..64).find_map(|_| {
        let len = rng.usize(16..=max_len);
        let mut raw = Bytes::from(biased_bytes(rng, len));
        RequestKind::decode(api, &mut raw, version).ok()
    })
}

/// One frame (size prefix, header, body) as a client sends it.
pub fn encode_frame(
    api: ApiKey,
    version: i16,
    correlation_id: i32,
    client_id: Option<&str>,
    body: &RequestKind,
) -> anyhow::Result<Vec<u8>> {
    let mut buf = BytesMut::new();
    buf.put_i32(0);
    RequestHeader::default()
        .with_request_api_key(api as i16)
        .with_request_api_version(version)
        .with_correlation_id(correlation_id)
        .with_client_id(client_id.map(|c| StrBytes::from_string(c.to_string())))
        .encode(&mut buf, api.request_header_version(version))?;
    body.encode(&mut buf, version)?;
    let size = (buf.len() - 4) as i32;
    buf[..4].copy_from_slice(&size.to_be_bytes());
    Ok(buf.to_vec())
}

/// Gives every partition of a Produce request one of `batches`.
fn with_valid_records(body: RequestKind, batches: &[Vec<u8>], rng: &mut Rng) -> RequestKind {
    match body {
        RequestKind::Produce(mut p) => {
            for t in &mut p.topic_data {
                for d in &mut t.partition_data {
                    let b = &batches[rng.usize(0..batches.len())];
                    d.records = Some(Bytes::copy_from_slice(b));
                }
            }
            RequestKind::Produce(p)
        }
        other => other,
    }
}

impl Target for KafkaRequest {
    fn name(&self) -> &'static str {
        "kafka-request"
    }

    fn seeds(&self, rng: &mut Rng) -> Vec<Vec<u8>> {
        let batches = super::batch::valid_batches(rng);
        let mut seeds = Vec::new();
        for &(api, min, max) in SUPPORTED {
            for version in min..=max {
                let default = default_body(api);
                let client = Some("phxq-fuzz");
                seeds.push(
                    encode_frame(api, version, rng.i32(..), client, &default)
                        .expect("a default request encodes"),
                );
                for i in 0..RANDOMIZED_PER_VERSION {
                    // The last one from more bytes: long arrays, large inputs.
                    let max_len = if i + 1 == RANDOMIZED_PER_VERSION {
                        16 << 10
                    } else {
                        1024
                    };
                    let Some(body) = randomized_body(api, version, rng, max_len) else {
                        continue;
                    };
                    let body = with_valid_records(body, &batches, rng);
                    let client =
                        ["", "c", "rdkafka", "a-much-longer-client-id-for-fuzz"][rng.usize(0..4)];
                    let client = rng.bool().then_some(client);
                    if let Ok(f) = encode_frame(api, version, rng.i32(..), client, &body) {
                        seeds.push(f);
                    }
                }
            }
        }
        // Pipelined requests: several frames in one read, the last one cut short.
        for _ in 0..16 {
            let mut s = Vec::new();
            for _ in 0..rng.usize(2..=4) {
                s.extend_from_slice(&seeds[rng.usize(0..seeds.len())]);
            }
            let cut = rng.usize(s.len() - 8..=s.len());
            s.truncate(cut);
            seeds.push(s);
        }
        seeds
    }

    fn fixup(&self, data: &mut Vec<u8>, rng: &mut Rng) {
        // Most of the time the size prefix says what follows, so the frame is decoded.
        if data.len() >= 4 && rng.u32(0..10) < 8 {
            let size = (data.len() - 4) as i32;
            data[..4].copy_from_slice(&size.to_be_bytes());
        }
    }

    fn exec(&self, input: &[u8]) -> Result<bool, String> {
        stage("kafka frames and requests", input.len(), 0, || {
            let mut buf = BytesMut::from(input);
            let mut decoded = false;
            loop {
                match frame::take_frame(&mut buf, SOCKET_REQUEST_MAX_BYTES) {
                    Ok(Some(f)) => {
                        decoded |= decode_request(f.freeze(), supported).is_ok();
                    }
                    Ok(None) => {
                        // The connection would wait for this many bytes.
                        let _ = frame::needed(&buf, SOCKET_REQUEST_MAX_BYTES);
                        break;
                    }
                    Err(_) => break,
                }
            }
            decoded
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_seed_frame_decodes_and_randomized_ones_have_content() {
        let mut rng = Rng::with_seed(1);
        let seeds = KafkaRequest.seeds(&mut rng);
        let mut randomized_larger = 0;
        for (&(api, min, max), _) in SUPPORTED.iter().zip(0..) {
            for v in min..=max {
                let default =
                    encode_frame(api, v, 0, Some("phxq-fuzz"), &default_body(api)).unwrap();
                let mine: Vec<_> = seeds
                    .iter()
                    .filter(|s| {
                        s.len() >= 8
                            && s[4..8] == [(api as i16).to_be_bytes(), v.to_be_bytes()].concat()[..]
                    })
                    .collect();
                assert!(!mine.is_empty(), "{api:?} v{v}");
                randomized_larger += mine.iter().filter(|s| s.len() > default.len() + 8).count();
            }
        }
        assert!(randomized_larger > 100, "{randomized_larger}");
        for s in &seeds[..seeds.len() - 16] {
            let size = i32::from_be_bytes(s[..4].try_into().unwrap()) as usize;
            assert_eq!(size, s.len() - 4);
            decode_request(Bytes::copy_from_slice(&s[4..]), supported).unwrap();
        }
    }
}
