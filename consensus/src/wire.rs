//! The byte encoding of consensus messages: explicit, canonical, bounded.
//!
//! Integers are fixed-width little-endian, byte strings and lists carry a
//! `u32` length, options a `0`/`1` tag. There is exactly one encoding of each
//! value, so signed and hashed bytes are the encoding itself and a decoder
//! that re-encodes gets the same bytes. Every length is checked against a
//! limit before anything is allocated, and trailing bytes are an error.
//! (Plain Rust instead of protobuf: protobuf does not promise one encoding per
//! value, and these messages never leave the validators.)

use yuchain_proto::{Hash32, PublicKey, Signature};

use crate::error::{ConsensusError, Result};

/// Appends encoded values to a buffer.
#[derive(Default)]
pub(crate) struct Writer {
    pub(crate) bytes: Vec<u8>,
}

impl Writer {
    pub(crate) fn u8(&mut self, value: u8) {
        self.bytes.push(value);
    }

    pub(crate) fn u16(&mut self, value: u16) {
        self.bytes.extend_from_slice(&value.to_le_bytes());
    }

    pub(crate) fn u64(&mut self, value: u64) {
        self.bytes.extend_from_slice(&value.to_le_bytes());
    }

    pub(crate) fn len(&mut self, len: usize) {
        // Lengths are bounded far below u32::MAX by the decoder's limits; an
        // encoder never produces a longer list than a decoder accepts.
        self.bytes
            .extend_from_slice(&u32::try_from(len).unwrap_or(u32::MAX).to_le_bytes());
    }

    pub(crate) fn bytes(&mut self, value: &[u8]) {
        self.len(value.len());
        self.bytes.extend_from_slice(value);
    }

    pub(crate) fn hash(&mut self, value: &Hash32) {
        self.bytes.extend_from_slice(&value.0);
    }

    pub(crate) fn key(&mut self, value: &PublicKey) {
        self.bytes.extend_from_slice(&value.0);
    }

    pub(crate) fn signature(&mut self, value: &Signature) {
        self.bytes.extend_from_slice(&value.0);
    }
}

/// Reads encoded values, never past the end.
pub(crate) struct Reader<'a> {
    bytes: &'a [u8],
}

impl<'a> Reader<'a> {
    pub(crate) fn new(bytes: &'a [u8]) -> Reader<'a> {
        Reader { bytes }
    }

    fn take(&mut self, count: usize) -> Result<&'a [u8]> {
        if self.bytes.len() < count {
            return Err(ConsensusError::Malformed("truncated"));
        }
        let (head, tail) = self.bytes.split_at(count);
        self.bytes = tail;
        Ok(head)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N]> {
        let slice = self.take(N)?;
        <[u8; N]>::try_from(slice).map_err(|_| ConsensusError::Malformed("truncated"))
    }

    pub(crate) fn u8(&mut self) -> Result<u8> {
        Ok(self.array::<1>()?[0])
    }

    pub(crate) fn u16(&mut self) -> Result<u16> {
        Ok(u16::from_le_bytes(self.array()?))
    }

    pub(crate) fn u64(&mut self) -> Result<u64> {
        Ok(u64::from_le_bytes(self.array()?))
    }

    /// A list or byte-string length, at most `max`.
    pub(crate) fn len(&mut self, max: usize, what: &'static str) -> Result<usize> {
        let len = u32::from_le_bytes(self.array()?) as usize;
        if len > max {
            return Err(ConsensusError::Malformed(what));
        }
        Ok(len)
    }

    pub(crate) fn bytes(&mut self, max: usize, what: &'static str) -> Result<Vec<u8>> {
        let len = self.len(max, what)?;
        Ok(self.take(len)?.to_vec())
    }

    pub(crate) fn hash(&mut self) -> Result<Hash32> {
        Ok(Hash32(self.array()?))
    }

    pub(crate) fn key(&mut self) -> Result<PublicKey> {
        Ok(PublicKey(self.array()?))
    }

    pub(crate) fn signature(&mut self) -> Result<Signature> {
        Ok(Signature(self.array()?))
    }

    /// An option tag: 0 for none, 1 for some.
    pub(crate) fn present(&mut self) -> Result<bool> {
        match self.u8()? {
            0 => Ok(false),
            1 => Ok(true),
            _ => Err(ConsensusError::Malformed("option tag")),
        }
    }

    pub(crate) fn finish(self) -> Result<()> {
        if self.bytes.is_empty() {
            Ok(())
        } else {
            Err(ConsensusError::Malformed("trailing bytes"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reader_rejects_truncation_long_lengths_and_trailing_bytes() {
        let mut writer = Writer::default();
        writer.u64(7);
        writer.bytes(b"abc");
        let bytes = writer.bytes;
        let mut reader = Reader::new(&bytes);
        assert_eq!(reader.u64().expect("u64"), 7);
        assert_eq!(reader.bytes(3, "x").expect("bytes"), b"abc");
        reader.finish().expect("finished");

        let mut reader = Reader::new(&bytes[..5]);
        assert!(reader.u64().is_err());

        let mut reader = Reader::new(&bytes);
        reader.u64().expect("u64");
        assert!(reader.bytes(2, "x").is_err(), "length over the limit");

        let mut longer = bytes.clone();
        longer.push(0);
        let mut reader = Reader::new(&longer);
        reader.u64().expect("u64");
        reader.bytes(3, "x").expect("bytes");
        assert!(reader.finish().is_err());
    }
}
