//! The compact binary form of durable records (Paxos's acceptor log, the commit family's
//! write-ahead log): integers written little-endian in 8 bytes, read back from the front of a
//! byte slice. Records are written on every accept or vote, so JSON's cost showed in every
//! throughput profile.

/// Appends `x` little-endian.
pub fn put_u64(out: &mut Vec<u8>, x: u64) {
    out.extend_from_slice(&x.to_le_bytes());
}

/// Reads a little-endian u64 from the front of `bytes`, advancing it.
pub fn take_u64(bytes: &mut &[u8]) -> Option<u64> {
    let (head, rest) = bytes.split_first_chunk::<8>()?;
    *bytes = rest;
    Some(u64::from_le_bytes(*head))
}

/// Reads a u64 written by [`put_u64`] that must fit a u32.
pub fn take_u32(bytes: &mut &[u8]) -> Option<u32> {
    u32::try_from(take_u64(bytes)?).ok()
}

/// Reads one byte from the front of `bytes`, advancing it.
pub fn take_u8(bytes: &mut &[u8]) -> Option<u8> {
    let (head, rest) = bytes.split_first()?;
    *bytes = rest;
    Some(*head)
}
