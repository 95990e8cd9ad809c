//! Log ids as stored in redb (24 bytes: term, leader node, index), and the error of a
//! stored value that does not decode.

use bytes::{Buf, BufMut};

use crate::types::{LeaderId, LogId};

#[derive(Debug, thiserror::Error)]
#[error("corrupt stored value: {0}")]
pub struct DecodeError(pub &'static str);

/// A log id as 24 bytes: term, leader node, index.
pub fn encode_log_id(id: &LogId) -> [u8; 24] {
    let mut out = [0u8; 24];
    let mut w = &mut out[..];
    w.put_u64(id.leader_id.term);
    w.put_u64(id.leader_id.node_id);
    w.put_u64(id.index);
    out
}

pub fn decode_log_id(mut b: &[u8]) -> Result<LogId, DecodeError> {
    if b.len() != 24 {
        return Err(DecodeError("log id"));
    }
    let term = b.get_u64();
    let node_id = b.get_u64();
    Ok(LogId::new(LeaderId { term, node_id }, b.get_u64()))
}
