//! A TCP proxy that adds a fixed one-way delay in each direction without
//! capping bandwidth: every chunk read is stamped with its arrival time and
//! written to the other side at `arrival + delay`. For kernels without
//! netem (`tc qdisc ... delay`).
//!
//! Everything is bounded: the connections per listener, and the bytes held
//! in each direction (a full buffer stops the reader, so TCP flow control
//! pushes back on the sender as a slow link would).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context as _, Result};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, mpsc};
use tokio::task::JoinHandle;
use tokio::time::Instant;

/// The most bytes one read takes.
const CHUNK: usize = 64 << 10;
/// The most bytes held (read, not yet written) per direction of a
/// connection: well above the bandwidth-delay product of a LAN link at tens
/// of milliseconds.
const BUFFERED_BYTES: usize = 8 << 20;
/// The most chunks queued per direction.
const QUEUED_CHUNKS: usize = 4096;
/// The most connections one proxy carries at once.
const MAX_CONNECTIONS: usize = 64;
/// How long connecting to the target may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// A running proxy: accepts on `listen`, forwards to its target. Dropping
/// it (or [`DelayProxy::stop`]) stops accepting and closes every connection.
#[derive(Debug)]
pub struct DelayProxy {
    /// Where it accepts.
    pub listen: SocketAddr,
    /// Where it forwards.
    pub target: SocketAddr,
    task: JoinHandle<()>,
}

impl DelayProxy {
    /// Binds `listen` (port 0 picks one) and forwards every connection to
    /// `target`, delaying each direction by `delay`.
    pub async fn start(listen: SocketAddr, target: SocketAddr, delay: Duration) -> Result<Self> {
        let listener = TcpListener::bind(listen)
            .await
            .with_context(|| format!("binding the delay proxy on {listen}"))?;
        let listen = listener.local_addr()?;
        let task = tokio::spawn(accept_loop(listener, target, delay));
        Ok(DelayProxy {
            listen,
            target,
            task,
        })
    }

    /// Stops accepting and closes every connection.
    pub fn stop(&self) {
        self.task.abort();
    }
}

impl Drop for DelayProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn accept_loop(listener: TcpListener, target: SocketAddr, delay: Duration) {
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    // Connections are owned by this set: aborting the accept loop drops the
    // set, which aborts them all.
    let mut connections = tokio::task::JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let Ok((inbound, _)) = accepted else {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                };
                let Ok(slot) = Arc::clone(&slots).try_acquire_owned() else {
                    // Over the bound: refuse (the peer redials later).
                    drop(inbound);
                    continue;
                };
                connections.spawn(async move {
                    let _ = forward(inbound, target, delay).await;
                    drop(slot);
                });
            }
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
}

/// Carries one connection until both directions closed.
async fn forward(inbound: TcpStream, target: SocketAddr, delay: Duration) -> Result<()> {
    let outbound = tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(target))
        .await
        .context("connect timed out")??;
    inbound.set_nodelay(true)?;
    outbound.set_nodelay(true)?;
    let (in_read, in_write) = inbound.into_split();
    let (out_read, out_write) = outbound.into_split();
    let there = pipe(in_read, out_write, delay);
    let back = pipe(out_read, in_write, delay);
    // Either direction failing ends both (dropping the other's halves).
    tokio::try_join!(there, back)?;
    Ok(())
}

/// One direction: a reader stamping chunks, a writer releasing them at
/// `stamp + delay`; an end of stream is passed on (after the data before
/// it) as a shutdown of the write side.
async fn pipe(mut from: OwnedReadHalf, mut to: OwnedWriteHalf, delay: Duration) -> Result<()> {
    let budget = Arc::new(Semaphore::new(BUFFERED_BYTES));
    let (sender, mut receiver) = mpsc::channel::<(Instant, Vec<u8>)>(QUEUED_CHUNKS);
    let reader_budget = Arc::clone(&budget);
    let reader = async move {
        loop {
            // Reserve room for a full chunk before reading, then give back
            // what the read did not use.
            let permit = reader_budget
                .acquire_many(u32::try_from(CHUNK).unwrap_or(u32::MAX))
                .await
                .context("the byte budget closed")?;
            let mut chunk = vec![0u8; CHUNK];
            let read = from.read(&mut chunk).await?;
            permit.forget();
            reader_budget.add_permits(CHUNK - read);
            if read == 0 {
                return anyhow::Ok(());
            }
            chunk.truncate(read);
            if sender.send((Instant::now(), chunk)).await.is_err() {
                return Ok(());
            }
        }
    };
    let writer = async move {
        while let Some((stamp, chunk)) = receiver.recv().await {
            tokio::time::sleep_until(stamp + delay).await;
            to.write_all(&chunk).await?;
            budget.add_permits(chunk.len());
        }
        to.shutdown().await?;
        anyhow::Ok(())
    };
    tokio::try_join!(reader, writer)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn delays_each_direction_and_carries_every_byte() {
        let echo = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let echo_address = echo.local_addr().expect("address");
        tokio::spawn(async move {
            let (mut stream, _) = echo.accept().await.expect("accept");
            let (mut read, mut write) = stream.split();
            tokio::io::copy(&mut read, &mut write).await.expect("copy");
        });
        let delay = Duration::from_millis(30);
        let proxy = DelayProxy::start("127.0.0.1:0".parse().expect("address"), echo_address, delay)
            .await
            .expect("proxy");
        let mut client = TcpStream::connect(proxy.listen).await.expect("connect");
        let started = Instant::now();
        client.write_all(b"ping").await.expect("write");
        let mut answer = [0u8; 4];
        client.read_exact(&mut answer).await.expect("read");
        let round_trip = started.elapsed();
        assert_eq!(&answer, b"ping");
        assert!(round_trip >= 2 * delay, "round trip {round_trip:?}");
        assert!(round_trip < 2 * delay + Duration::from_millis(500));

        // Bulk data is not slowed to a chunk per delay.
        let data: Vec<u8> = (0..4_000_000u32).map(|i| i as u8).collect();
        let (mut read, mut write) = client.into_split();
        let sent = data.clone();
        let writer = tokio::spawn(async move {
            write.write_all(&sent).await.expect("bulk write");
            write.shutdown().await.expect("shutdown");
        });
        let started = Instant::now();
        let mut back = Vec::new();
        read.read_to_end(&mut back).await.expect("bulk read");
        writer.await.expect("writer");
        assert_eq!(back, data);
        assert!(started.elapsed() < Duration::from_secs(5));
    }
}
