//! Length-prefixed frames: a 4-byte big-endian length, then that many bytes.
//! Every length is checked against its limit before anything is allocated.

use std::io;

use futures::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use libp2p::StreamProtocol;

/// The one-way message protocol: one long-lived stream per peer per lane.
pub const MESSAGE_PROTOCOL: StreamProtocol = StreamProtocol::new("/yuchain/msg/1");
/// The request-response protocol for block and batch fetch.
pub const FETCH_PROTOCOL: StreamProtocol = StreamProtocol::new("/yuchain/fetch/1");

/// The size of the length prefix.
pub(crate) const LENGTH_BYTES: usize = 4;

/// Reads a frame's length prefix; `Ok(None)` on a clean end of stream.
pub(crate) async fn read_length<R: AsyncRead + Unpin>(io: &mut R) -> io::Result<Option<usize>> {
    let mut prefix = [0u8; LENGTH_BYTES];
    let mut filled = 0;
    while filled < LENGTH_BYTES {
        let read = io.read(&mut prefix[filled..]).await?;
        if read == 0 {
            if filled == 0 {
                return Ok(None);
            }
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        filled += read;
    }
    // u32 always fits in usize on the 32- and 64-bit targets libp2p supports.
    Ok(Some(u32::from_be_bytes(prefix) as usize))
}

/// Reads a body of `length` bytes, which the caller checked against its limit.
pub(crate) async fn read_body<R: AsyncRead + Unpin>(
    io: &mut R,
    length: usize,
) -> io::Result<Vec<u8>> {
    let mut body = vec![0u8; length];
    io.read_exact(&mut body).await?;
    Ok(body)
}

/// Reads and discards `length` bytes through a small buffer, so an
/// oversized frame costs bandwidth but no memory.
pub(crate) async fn skip_body<R: AsyncRead + Unpin>(io: &mut R, length: usize) -> io::Result<()> {
    let mut buffer = [0u8; 8 * 1024];
    let mut left = length;
    while left > 0 {
        let chunk = left.min(buffer.len());
        io.read_exact(&mut buffer[..chunk]).await?;
        left -= chunk;
    }
    Ok(())
}

/// Reads one whole frame of at most `length_max` bytes; a longer one is an
/// `InvalidData` error (used where the stream ends after one frame).
pub(crate) async fn read_frame<R: AsyncRead + Unpin>(
    io: &mut R,
    length_max: usize,
) -> io::Result<Vec<u8>> {
    let length = read_length(io).await?.ok_or(io::ErrorKind::UnexpectedEof)?;
    if length > length_max {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("frame of {length} bytes is larger than the limit of {length_max} bytes"),
        ));
    }
    read_body(io, length).await
}

/// Writes one frame; refuses a body longer than `length_max` (or than u32).
pub(crate) async fn write_frame<W: AsyncWrite + Unpin>(
    io: &mut W,
    body: &[u8],
    length_max: usize,
) -> io::Result<()> {
    let length = u32::try_from(body.len())
        .ok()
        .filter(|_| body.len() <= length_max)
        .ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "frame of {} bytes is larger than the limit of {length_max} bytes",
                    body.len()
                ),
            )
        })?;
    io.write_all(&length.to_be_bytes()).await?;
    io.write_all(body).await?;
    io.flush().await
}

/// The `/yuchain/fetch/1` codec: one frame each way, bounded both ways.
#[derive(Clone, Copy, Debug)]
pub(crate) struct FetchCodec {
    pub(crate) request_bytes_max: usize,
    pub(crate) response_bytes_max: usize,
}

#[async_trait::async_trait]
impl libp2p::request_response::Codec for FetchCodec {
    type Protocol = StreamProtocol;
    type Request = Vec<u8>;
    type Response = Vec<u8>;

    async fn read_request<T>(&mut self, _: &StreamProtocol, io: &mut T) -> io::Result<Vec<u8>>
    where
        T: AsyncRead + Unpin + Send,
    {
        read_frame(io, self.request_bytes_max).await
    }

    async fn read_response<T>(&mut self, _: &StreamProtocol, io: &mut T) -> io::Result<Vec<u8>>
    where
        T: AsyncRead + Unpin + Send,
    {
        read_frame(io, self.response_bytes_max).await
    }

    async fn write_request<T>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
        request: Vec<u8>,
    ) -> io::Result<()>
    where
        T: AsyncWrite + Unpin + Send,
    {
        write_frame(io, &request, self.request_bytes_max).await
    }

    async fn write_response<T>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
        response: Vec<u8>,
    ) -> io::Result<()>
    where
        T: AsyncWrite + Unpin + Send,
    {
        write_frame(io, &response, self.response_bytes_max).await
    }
}

#[cfg(test)]
mod tests {
    use futures::io::Cursor;

    use super::*;

    #[tokio::test]
    async fn frame_round_trips_and_clean_end_is_none() {
        let mut wire = Cursor::new(Vec::new());
        write_frame(&mut wire, b"hello", 16).await.unwrap();
        wire.set_position(0);
        assert_eq!(read_frame(&mut wire, 16).await.unwrap(), b"hello");
        assert_eq!(read_length(&mut wire).await.unwrap(), None);
    }

    #[tokio::test]
    async fn oversized_length_is_refused_before_allocating() {
        // A prefix claiming 4 GiB with no body: refused on the prefix alone.
        let mut wire = Cursor::new(u32::MAX.to_be_bytes().to_vec());
        let error = read_frame(&mut wire, 1024).await.unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::InvalidData);
        let mut sink = Cursor::new(Vec::new());
        let error = write_frame(&mut sink, &[0u8; 17], 16).await.unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::InvalidInput);
        assert!(sink.into_inner().is_empty(), "nothing is written");
    }

    #[tokio::test]
    async fn truncated_prefix_is_an_error() {
        let mut wire = Cursor::new(vec![0u8, 0]);
        assert!(read_length(&mut wire).await.is_err());
    }
}
