//! Request decoding and response encoding for one frame.
//!
//! A frame body is `header || body`. The header version depends on the API key and
//! version, so the key and version are read first; unknown keys and versions outside the
//! broker's advertised range are reported as [`DecodeError`]s carrying the correlation id,
//! so that the caller can answer (ApiVersions) or close the connection with a logged reason.

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::{ApiKey, RequestHeader, RequestKind, ResponseHeader, ResponseKind};
use kafka_protocol::protocol::{Decodable, Encodable};

/// A decoded request.
#[derive(Debug)]
pub struct Request {
    pub api_key: ApiKey,
    pub header: RequestHeader,
    pub body: RequestKind,
}

impl Request {
    pub fn version(&self) -> i16 {
        self.header.request_api_version
    }
    pub fn correlation_id(&self) -> i32 {
        self.header.correlation_id
    }
}

/// Why a frame did not decode into a request.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    #[error("frame of {0} bytes is too short for a request header")]
    TooShort(usize),
    #[error("unknown API key {key} (correlation id {correlation_id})")]
    UnknownApiKey {
        key: i16,
        version: i16,
        correlation_id: i32,
    },
    #[error("unsupported version {version} of {key:?} (correlation id {correlation_id})")]
    UnsupportedVersion {
        key: ApiKey,
        version: i16,
        correlation_id: i32,
    },
    #[error("malformed {key:?} v{version} request (correlation id {correlation_id}): {reason}")]
    Malformed {
        key: ApiKey,
        version: i16,
        correlation_id: i32,
        reason: String,
    },
}

/// Decodes one frame. `supported` gives the broker's version range for a key, or `None`
/// if the key is not served.
pub fn decode_request(
    mut frame: Bytes,
    supported: impl Fn(ApiKey) -> Option<(i16, i16)>,
) -> Result<Request, DecodeError> {
    if frame.len() < 8 {
        return Err(DecodeError::TooShort(frame.len()));
    }
    let key = i16::from_be_bytes([frame[0], frame[1]]);
    let version = i16::from_be_bytes([frame[2], frame[3]]);
    let correlation_id = i32::from_be_bytes([frame[4], frame[5], frame[6], frame[7]]);
    let Ok(api_key) = ApiKey::try_from(key) else {
        return Err(DecodeError::UnknownApiKey {
            key,
            version,
            correlation_id,
        });
    };
    let Some((min, max)) = supported(api_key) else {
        return Err(DecodeError::UnknownApiKey {
            key,
            version,
            correlation_id,
        });
    };
    let malformed = |reason: String| DecodeError::Malformed {
        key: api_key,
        version,
        correlation_id,
        reason,
    };
    // An ApiVersions request newer than ours must still be answered (with v0), so its
    // header is read as the lowest header version and its body is not decoded.
    if version < min || version > max {
        return Err(DecodeError::UnsupportedVersion {
            key: api_key,
            version,
            correlation_id,
        });
    }
    let header_version = api_key.request_header_version(version);
    let header = guarded(|| RequestHeader::decode(&mut frame, header_version))
        .map_err(|e| malformed(format!("header: {e}")))?;
    let body = guarded(|| RequestKind::decode(api_key, &mut frame, version))
        .map_err(|e| malformed(format!("body: {e}")))?;
    // Trailing bytes after a body are tolerated, as Kafka does for forward compatibility.
    Ok(Request {
        api_key,
        header,
        body,
    })
}

/// Runs a decoder, turning a panic inside the codec into an error so that network input can
/// never take the broker down.
fn guarded<T>(f: impl FnOnce() -> anyhow::Result<T>) -> anyhow::Result<T> {
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)) {
        Ok(r) => r,
        Err(_) => Err(anyhow::anyhow!("decoder panicked on malformed input")),
    }
}

/// Encodes `header || body` for `api_key` at `version` as one frame (size prefix included)
/// appended to `out`.
pub fn encode_response(
    out: &mut BytesMut,
    api_key: ApiKey,
    version: i16,
    correlation_id: i32,
    body: &ResponseKind,
) -> anyhow::Result<()> {
    let start = out.len();
    out.put_i32(0);
    let header = ResponseHeader::default().with_correlation_id(correlation_id);
    header.encode(out, api_key.response_header_version(version))?;
    body.encode(out, version)?;
    let size = (out.len() - start - 4) as i32;
    out[start..start + 4].copy_from_slice(&size.to_be_bytes());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::messages::ApiVersionsRequest;

    fn frame(key: i16, version: i16, body: &ApiVersionsRequest) -> Bytes {
        let mut buf = BytesMut::new();
        let header = RequestHeader::default()
            .with_request_api_key(key)
            .with_request_api_version(version)
            .with_correlation_id(42)
            .with_client_id(Some("t".into()));
        header
            .encode(
                &mut buf,
                ApiKey::ApiVersions.request_header_version(version),
            )
            .unwrap();
        body.encode(&mut buf, version).unwrap();
        buf.freeze()
    }

    #[test]
    fn decodes_api_versions() {
        let f = frame(18, 3, &ApiVersionsRequest::default());
        let req = decode_request(f, |_| Some((0, 3))).unwrap();
        assert_eq!(req.api_key, ApiKey::ApiVersions);
        assert_eq!(req.correlation_id(), 42);
    }

    #[test]
    fn reports_unknown_and_unsupported() {
        let mut f = BytesMut::from(&frame(18, 3, &ApiVersionsRequest::default())[..]);
        f[2..4].copy_from_slice(&9i16.to_be_bytes());
        assert!(matches!(
            decode_request(f.freeze(), |_| Some((0, 3))),
            Err(DecodeError::UnsupportedVersion {
                correlation_id: 42,
                ..
            })
        ));
        let mut raw = BytesMut::new();
        raw.put_i16(9999);
        raw.put_i16(0);
        raw.put_i32(7);
        assert!(matches!(
            decode_request(raw.freeze(), |_| Some((0, 3))),
            Err(DecodeError::UnknownApiKey {
                key: 9999,
                correlation_id: 7,
                ..
            })
        ));
    }

    #[test]
    fn garbage_never_panics() {
        let mut seed = 0x1234_5678u32;
        for len in 8..400 {
            let mut buf = Vec::with_capacity(len);
            for _ in 0..len {
                seed = seed.wrapping_mul(1_103_515_245).wrapping_add(12345);
                buf.push((seed >> 16) as u8);
            }
            for key in [0i16, 1, 2, 3, 18, 19] {
                buf[0..2].copy_from_slice(&key.to_be_bytes());
                buf[2..4].copy_from_slice(&3i16.to_be_bytes());
                let _ = decode_request(Bytes::from(buf.clone()), |_| Some((0, 9)));
            }
        }
    }
}
#[cfg(test)]
mod huge_arrays {
    use super::*;
    #[test]
    fn huge_array_count_is_refused() {
        // Produce v3: transactional_id (null), acks, timeout, topic_data count = i32::MAX.
        let mut raw = BytesMut::new();
        raw.put_i16(0);
        raw.put_i16(3);
        raw.put_i32(1);
        raw.put_i16(-1); // client id null
        raw.put_i16(-1); // transactional id
        raw.put_i16(1);
        raw.put_i32(1000);
        raw.put_i32(i32::MAX);
        let r = decode_request(raw.freeze(), |_| Some((0, 9)));
        assert!(r.is_err());
    }
}
