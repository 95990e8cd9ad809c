//! Length-prefixed frames: every Kafka request and response is a big-endian i32 size
//! followed by that many bytes. This module splits a byte stream into frames and rejects
//! sizes that are negative or past the configured limit before any memory is reserved.

use bytes::{Buf, BytesMut};

/// Why a frame could not be taken from the stream. Either way the connection must close.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum FrameError {
    #[error("frame size {0} is negative")]
    Negative(i32),
    #[error("frame size {size} exceeds the limit of {limit} bytes")]
    TooLarge { size: usize, limit: usize },
}

/// Takes one complete frame body (without the size prefix) off the front of `buf`.
///
/// Returns `Ok(None)` when more bytes are needed. The caller should reserve
/// [`needed`] bytes to avoid repeated reallocation.
pub fn take_frame(buf: &mut BytesMut, limit: usize) -> Result<Option<BytesMut>, FrameError> {
    let Some(size) = peek_size(buf, limit)? else {
        return Ok(None);
    };
    if buf.len() < 4 + size {
        return Ok(None);
    }
    buf.advance(4);
    Ok(Some(buf.split_to(size)))
}

/// How many bytes the frame at the front of `buf` needs in total (prefix included), if its
/// size prefix is already there.
pub fn needed(buf: &[u8], limit: usize) -> Result<Option<usize>, FrameError> {
    Ok(peek_size(buf, limit)?.map(|s| s + 4))
}

fn peek_size(buf: &[u8], limit: usize) -> Result<Option<usize>, FrameError> {
    if buf.len() < 4 {
        return Ok(None);
    }
    let size = i32::from_be_bytes([buf[0], buf[1], buf[2], buf[3]]);
    if size < 0 {
        return Err(FrameError::Negative(size));
    }
    let size = size as usize;
    if size > limit {
        return Err(FrameError::TooLarge { size, limit });
    }
    Ok(Some(size))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_frames_and_waits_for_more() {
        let mut buf = BytesMut::from(&[0, 0, 0, 3, 1, 2, 3, 0, 0, 0, 2, 9][..]);
        assert_eq!(&take_frame(&mut buf, 10).unwrap().unwrap()[..], &[1, 2, 3]);
        assert_eq!(take_frame(&mut buf, 10).unwrap(), None);
        buf.extend_from_slice(&[8]);
        assert_eq!(&take_frame(&mut buf, 10).unwrap().unwrap()[..], &[9, 8]);
        assert!(buf.is_empty());
    }

    #[test]
    fn rejects_negative_and_huge_sizes() {
        let mut buf = BytesMut::from(&[0x7f, 0xff, 0xff, 0xff][..]);
        assert!(matches!(
            take_frame(&mut buf, 1 << 20),
            Err(FrameError::TooLarge { .. })
        ));
        let mut buf = BytesMut::from(&[0xff, 0xff, 0xff, 0xfe][..]);
        assert_eq!(take_frame(&mut buf, 1 << 20), Err(FrameError::Negative(-2)));
    }
}
