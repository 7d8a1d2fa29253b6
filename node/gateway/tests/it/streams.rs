//! StreamBlocks and StreamEvents: order, resumption, back-pressure, the
//! stream limit and shutdown.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use tonic::Code;
use tonic::Streaming;
use yuchain_gateway::GatewayConfig;
use yuchain_proto::pb;

use crate::errors::assert_reason;
use crate::support::{FAKE_HEIGHT, FakeBackend, TestGateway, bounded, test_config};

async fn next<T>(stream: &mut Streaming<T>) -> T {
    bounded(stream.message())
        .await
        .expect("a message, not an error")
        .expect("the stream goes on")
}

/// Reads the blocks a stream still delivers, in order from `from` with no
/// gap, up to the error that ends it; returns the next height not
/// received and the error.
async fn drain_until_error(
    stream: &mut Streaming<pb::StreamBlocksResponse>,
    from: u64,
) -> (u64, tonic::Status) {
    let mut expected = from;
    loop {
        match bounded(stream.message()).await {
            Ok(Some(block)) => {
                assert_eq!(block.height, expected, "in order, no gap");
                expected += 1;
                assert!(expected < from + 10_000, "a stalled stream ends");
            }
            Ok(None) => panic!("a stream never ends without saying why"),
            Err(status) => return (expected, status),
        }
    }
}

/// A gateway (with `config`) over a fake chain of 10,000 blocks of 64 KiB.
async fn big_blocks(config: GatewayConfig) -> (Arc<FakeBackend>, TestGateway) {
    let backend = FakeBackend::new();
    backend.block_padding.store(64 * 1024, Ordering::Relaxed);
    backend.grow_to(10_000);
    let gateway = TestGateway::start_with(config, backend.clone()).await;
    (backend, gateway)
}

/// Opens a block stream from `height`.
async fn open(
    client: &mut yuchain_gateway::WalletGatewayClient<tonic::transport::Channel>,
    height: u64,
) -> Streaming<pb::StreamBlocksResponse> {
    bounded(client.stream_blocks(blocks_from(height)))
        .await
        .expect("a stream")
        .into_inner()
}

fn blocks_from(height: u64) -> pb::StreamBlocksRequest {
    pb::StreamBlocksRequest {
        from_height: height,
    }
}

#[tokio::test]
async fn blocks_arrive_in_order_wait_at_the_head_and_resume_without_gap_or_repeat() {
    let backend = FakeBackend::new();
    let gateway = TestGateway::start(backend.clone()).await;
    let mut client = gateway.client().await;
    let mut stream = open(&mut client, 0).await;
    for height in 0..=FAKE_HEIGHT {
        assert_eq!(next(&mut stream).await.height, height);
    }
    // At the head the stream waits; new blocks arrive as they commit.
    let waiting = tokio::time::timeout(Duration::from_millis(300), stream.message()).await;
    assert!(waiting.is_err(), "nothing above the head is sent");
    backend.grow_to(FAKE_HEIGHT + 3);
    assert_eq!(next(&mut stream).await.height, FAKE_HEIGHT + 1);
    // A forced disconnect after FAKE_HEIGHT + 1: resuming from the next
    // height gives exactly the rest.
    drop(stream);
    drop(client);
    let mut client = gateway.client().await;
    let mut resumed = open(&mut client, FAKE_HEIGHT + 2).await;
    assert_eq!(next(&mut resumed).await.height, FAKE_HEIGHT + 2);
    assert_eq!(next(&mut resumed).await.height, FAKE_HEIGHT + 3);
}

#[tokio::test]
async fn events_start_at_a_height_and_index_and_carry_receipts() {
    let backend = FakeBackend::new();
    let gateway = TestGateway::start(backend.clone()).await;
    let mut client = gateway.client().await;
    // One transaction per fake block: from (2, 1) skips block 2's only one.
    let mut events = bounded(client.stream_events(pb::StreamEventsRequest {
        from_height: 2,
        from_index: 1,
    }))
    .await
    .expect("a stream")
    .into_inner();
    let event = next(&mut events).await;
    assert_eq!((event.height, event.index), (3, 0));
    assert_eq!(event.tx_id, 3u64.to_le_bytes().to_vec());
    assert_eq!(event.timestamp_ms, 1_003);
    assert!(event.transaction.is_some() && event.receipt.is_some());
    backend.grow_to(4);
    assert_eq!(next(&mut events).await.height, 4);
}

#[tokio::test]
async fn a_client_that_does_not_read_holds_back_only_its_own_stream() {
    // 64 KiB blocks.
    let (backend, gateway) = big_blocks(test_config()).await;
    let mut client = gateway.client().await;
    let mut stalled = open(&mut client, 0).await;
    assert_eq!(next(&mut stalled).await.height, 0);
    // What flows is bounded by the stream's buffer, HTTP/2's windows and
    // the sockets' buffers (a few MB), not by the 10,000 blocks available;
    // then the producer waits, reading no more.
    tokio::time::sleep(Duration::from_millis(700)).await;
    let read = backend.block_reads.load(Ordering::Relaxed);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let later = backend.block_reads.load(Ordering::Relaxed);
    assert!(
        read <= 200,
        "the producer waits for the reader: {read} blocks of 64 KiB read for one received"
    );
    assert_eq!(read, later, "a stalled reader stalls its producer");
    // Another client is served meanwhile, on its own connection.
    let mut other = gateway.client().await;
    let info = bounded(other.get_chain_info(pb::GetChainInfoRequest {}))
        .await
        .expect("served");
    assert_eq!(info.into_inner().height, FAKE_HEIGHT);
    // Reading again, the stalled stream goes on in order.
    for height in 1..20 {
        assert_eq!(next(&mut stalled).await.height, height);
    }
}

#[tokio::test]
async fn streams_beyond_the_limit_are_refused_until_one_ends() {
    let backend = FakeBackend::new();
    let gateway = TestGateway::start_with(
        GatewayConfig {
            streams_max: 3,
            ..test_config()
        },
        backend.clone(),
    )
    .await;
    let mut client = gateway.client().await;
    let mut open = Vec::new();
    for _ in 0..3 {
        let mut stream = bounded(client.stream_blocks(blocks_from(FAKE_HEIGHT)))
            .await
            .expect("within the limit")
            .into_inner();
        next(&mut stream).await;
        open.push(stream);
    }
    let status = bounded(client.stream_blocks(blocks_from(0)))
        .await
        .expect_err("over the limit");
    assert_eq!(status.code(), Code::ResourceExhausted);
    assert_reason(&status, "STREAMS_FULL");
    // One ends; its slot comes back once its producer notices.
    drop(open.pop());
    let mut admitted = false;
    for _ in 0..50 {
        if let Ok(response) = client.stream_blocks(blocks_from(0)).await {
            let mut stream = response.into_inner();
            assert_eq!(next(&mut stream).await.height, 0);
            admitted = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(admitted, "a closed stream frees its slot");
}

#[tokio::test]
async fn shutdown_ends_streams_with_the_height_to_resume_from() {
    let backend = FakeBackend::new();
    let gateway = TestGateway::start(backend.clone()).await;
    let mut client = gateway.client().await;
    let mut stream = open(&mut client, 0).await;
    for _ in 0..=FAKE_HEIGHT {
        next(&mut stream).await;
    }
    // The stream waits at the head; stopping the gateway must not wait for
    // it forever.
    bounded(gateway.stop()).await.expect("a clean stop");
    let ended = bounded(stream.message()).await;
    match ended {
        Err(status) => {
            assert_eq!(status.code(), Code::Unavailable, "{status:?}");
            assert_reason(&status, "SHUTTING_DOWN");
            assert!(
                status
                    .message()
                    .contains(&format!("from_height {}", FAKE_HEIGHT + 1)),
                "{}",
                status.message()
            );
        }
        Ok(other) => panic!("the stream should end with UNAVAILABLE, got {other:?}"),
    }
}

#[tokio::test]
async fn shutdown_is_not_held_up_by_a_client_that_stopped_reading() {
    let (_backend, gateway) = big_blocks(test_config()).await;
    let mut client = gateway.client().await;
    let mut stalled = open(&mut client, 0).await;
    assert_eq!(next(&mut stalled).await.height, 0);
    tokio::time::sleep(Duration::from_millis(300)).await;
    // Its buffers are full and it reads nothing more; the gateway still
    // stops within the step bound.
    bounded(gateway.stop()).await.expect("a clean stop");
    drop(stalled);
}

#[tokio::test]
async fn a_stalled_client_loses_its_stream_with_the_height_to_resume_from() {
    let (_backend, gateway) = big_blocks(GatewayConfig {
        stream_stall_timeout: Duration::from_millis(300),
        ..test_config()
    })
    .await;
    let mut client = gateway.client().await;
    let mut stalled = open(&mut client, 0).await;
    assert_eq!(next(&mut stalled).await.height, 0);
    // Reading nothing for longer than the stall timeout ends the stream;
    // what was queued still arrives, in order, then the error says where to
    // resume, which is the next height not received.
    tokio::time::sleep(Duration::from_millis(1_000)).await;
    let (expected, status) = drain_until_error(&mut stalled, 1).await;
    assert_eq!(status.code(), Code::ResourceExhausted, "{status:?}");
    assert_reason(&status, "STREAM_STALLED");
    assert!(
        status
            .message()
            .contains(&format!("from_height {expected}")),
        "resume from {expected}: {}",
        status.message()
    );
    // A client that reads is served as before.
    let mut reading = open(&mut client, expected).await;
    assert_eq!(next(&mut reading).await.height, expected);
}

#[tokio::test]
async fn the_byte_budget_is_shared_by_all_streams_and_a_stalled_one_gives_it_back() {
    // 64 KiB blocks against a budget of 48 KiB: each message is larger than
    // the whole budget (and still goes, alone), so at most one message is
    // queued in all streams together.
    let (_backend, gateway) = big_blocks(GatewayConfig {
        stream_bytes_max: 48 * 1024,
        stream_stall_timeout: Duration::from_millis(400),
        ..test_config()
    })
    .await;
    let mut client = gateway.client().await;
    let mut first = open(&mut client, 0).await;
    for height in 0..5 {
        assert_eq!(next(&mut first).await.height, height);
    }
    // The first client stops reading; its queued message holds the budget,
    // so the second stream waits for it, until the first is ended for
    // stalling and gives it back.
    let mut second = open(&mut client, 0).await;
    for height in 0..5 {
        assert_eq!(next(&mut second).await.height, height);
    }
    let (_, status) = drain_until_error(&mut first, 5).await;
    assert_reason(&status, "STREAM_STALLED");
}
