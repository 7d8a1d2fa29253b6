//! Real-socket tests of yuchain-network: nodes on loopback, port 0, keys
//! from fixed seeds, every wait bounded by a timeout.

use std::{future::Future, time::Duration};

use tokio::sync::mpsc::Receiver;
use tokio::time::{Instant, sleep, timeout};
use yuchain_network::{
    Channel, Limits, NetworkConfig, NetworkEvent, NetworkHandle, NetworkKey, PeerAddress, PeerKey,
    RequestError, SendError, spawn,
};

type Events = Receiver<NetworkEvent>;

fn key(seed: u8) -> NetworkKey {
    NetworkKey::from_seed([seed; 32])
}

fn peer(seed: u8) -> PeerKey {
    key(seed).public()
}

/// Runs `future` or fails the test after `seconds`.
async fn within<F: Future>(seconds: u64, what: &str, future: F) -> F::Output {
    timeout(Duration::from_secs(seconds), future)
        .await
        .unwrap_or_else(|_| panic!("timed out after {seconds} s: {what}"))
}

struct Node {
    handle: NetworkHandle,
    events: Events,
}

impl Node {
    fn address(&self) -> PeerAddress {
        PeerAddress {
            key: self.handle.local_key(),
            address: self.handle.listen_address().to_string(),
        }
    }
}

async fn start(seed: u8, dial: Vec<PeerAddress>, allowed: Vec<PeerKey>, limits: Limits) -> Node {
    start_on("127.0.0.1:0", seed, dial, allowed, limits).await
}

async fn start_on(
    listen: &str,
    seed: u8,
    dial: Vec<PeerAddress>,
    allowed: Vec<PeerKey>,
    limits: Limits,
) -> Node {
    let config = NetworkConfig {
        key: key(seed),
        listen: listen.parse().expect("a socket address"),
        dial,
        allowed,
        limits,
    };
    let (handle, events) = spawn(config).await.expect("the network starts");
    Node { handle, events }
}

/// Waits for the next event that `pick` accepts, skipping the others.
async fn next<T>(events: &mut Events, mut pick: impl FnMut(NetworkEvent) -> Option<T>) -> T {
    loop {
        let event = events.recv().await.expect("the events channel stays open");
        if let Some(found) = pick(event) {
            return found;
        }
    }
}

async fn next_message(events: &mut Events) -> (PeerKey, Channel, Vec<u8>) {
    next(events, |event| match event {
        NetworkEvent::Message {
            from,
            channel,
            bytes,
        } => Some((from, channel, bytes)),
        _ => None,
    })
    .await
}

async fn wait_connected(handle: &NetworkHandle, peers: &[PeerKey]) {
    within(5, "peers connect", async {
        while !peers.iter().all(|p| handle.connected_peers().contains(p)) {
            sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
}

/// Answers every request on `events` with `pong:` and the request, and
/// forwards nothing else.
fn serve_pong(mut events: Events) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        while let Some(event) = events.recv().await {
            if let NetworkEvent::Request { bytes, reply, .. } = event {
                reply.send([b"pong:".as_slice(), &bytes].concat());
            }
        }
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_exchange_messages_on_both_lanes_and_requests() {
    let mut a = start(1, vec![], vec![peer(2)], Limits::default()).await;
    let mut b = start(2, vec![a.address()], vec![], Limits::default()).await;
    let connected = within(
        5,
        "A sees B",
        next(&mut a.events, |e| match e {
            NetworkEvent::PeerConnected(k) => Some(k),
            _ => None,
        }),
    )
    .await;
    assert_eq!(connected, peer(2));
    wait_connected(&b.handle, &[peer(1)]).await;

    b.handle
        .send(peer(1), Channel::Consensus, b"vote".to_vec())
        .expect("queued");
    b.handle
        .send(peer(1), Channel::Batches, b"batch".to_vec())
        .expect("queued");
    let mut received = vec![
        within(5, "first message", next_message(&mut a.events)).await,
        within(5, "second message", next_message(&mut a.events)).await,
    ];
    received.sort_by_key(|(_, channel, _)| *channel == Channel::Batches);
    assert_eq!(
        received,
        vec![
            (peer(2), Channel::Consensus, b"vote".to_vec()),
            (peer(2), Channel::Batches, b"batch".to_vec()),
        ]
    );

    a.handle
        .send(peer(2), Channel::Consensus, b"reply".to_vec())
        .expect("queued");
    let (from, channel, bytes) = within(5, "A to B", next_message(&mut b.events)).await;
    assert_eq!(
        (from, channel, bytes),
        (peer(1), Channel::Consensus, b"reply".to_vec())
    );

    // A batch near the 4 MiB default limit crosses in one piece.
    let big: Vec<u8> = (0..3 * 1024 * 1024).map(|i| (i % 251) as u8).collect();
    b.handle
        .send(peer(1), Channel::Batches, big.clone())
        .expect("queued");
    let (_, channel, bytes) = within(5, "the big batch", next_message(&mut a.events)).await;
    assert_eq!(channel, Channel::Batches);
    assert!(bytes == big, "the big batch arrives intact");

    let server = serve_pong(a.events);
    let answer = within(5, "request", b.handle.request(peer(1), b"block 7".to_vec())).await;
    assert_eq!(answer.expect("answered"), b"pong:block 7".to_vec());

    let stats = b.handle.stats();
    assert_eq!(stats.consensus.messages_out, 1);
    assert_eq!(stats.batches.messages_out, 2);
    assert_eq!(stats.requests_out, 1);
    assert_eq!(a.handle.stats().consensus.bytes_in, 4);

    b.handle.shutdown().await;
    a.handle.shutdown().await;
    server.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broadcast_reaches_every_connected_peer_of_three() {
    let everyone = vec![peer(1), peer(2), peer(3)];
    let a = start(1, vec![], everyone.clone(), Limits::default()).await;
    let mut b = start(2, vec![a.address()], everyone.clone(), Limits::default()).await;
    let mut c = start(
        3,
        vec![a.address(), b.address()],
        everyone.clone(),
        Limits::default(),
    )
    .await;
    wait_connected(&a.handle, &[peer(2), peer(3)]).await;
    wait_connected(&b.handle, &[peer(1), peer(3)]).await;
    wait_connected(&c.handle, &[peer(1), peer(2)]).await;

    assert_eq!(a.handle.broadcast(Channel::Batches, b"batch 1".to_vec()), 2);
    assert_eq!(
        c.handle.broadcast(Channel::Consensus, b"proposal".to_vec()),
        2
    );
    // B hears both broadcasts, in either order; C hears A's.
    let mut heard_by_b = vec![
        within(5, "B's first", next_message(&mut b.events)).await,
        within(5, "B's second", next_message(&mut b.events)).await,
    ];
    heard_by_b.sort_by_key(|(from, _, _)| *from);
    assert_eq!(
        heard_by_b,
        vec![
            (peer(1), Channel::Batches, b"batch 1".to_vec()),
            (peer(3), Channel::Consensus, b"proposal".to_vec()),
        ]
    );
    let heard_by_c = within(5, "C hears A", next_message(&mut c.events)).await;
    assert_eq!(heard_by_c, (peer(1), Channel::Batches, b"batch 1".to_vec()));
    assert_eq!(
        a.handle
            .broadcast(Channel::Consensus, vec![0; 5 * 1024 * 1024]),
        0,
        "too big"
    );
    for node in [a, b, c] {
        node.handle.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_peer_is_refused_and_nothing_from_it_arrives() {
    let mut a = start(1, vec![], vec![peer(2)], Limits::default()).await;
    let mut intruder = start(9, vec![a.address()], vec![peer(1)], Limits::default()).await;
    let spammer = {
        let handle = intruder.handle.clone();
        tokio::spawn(async move {
            loop {
                let _ = handle.send(peer(1), Channel::Consensus, b"forged vote".to_vec());
                let _ = handle.request(peer(1), b"fetch".to_vec()).await;
                sleep(Duration::from_millis(5)).await;
            }
        })
    };
    within(5, "A refuses the intruder", async {
        while a.handle.stats().refused_connections < 2 {
            sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
    // The intruder may see its side of a connection for a moment; each one
    // must be closed by A.
    within(5, "the intruder sees the connection closed", async {
        let mut connected = false;
        loop {
            match intruder.events.recv().await {
                Some(NetworkEvent::PeerConnected(k)) if k == peer(1) => connected = true,
                Some(NetworkEvent::PeerDisconnected(k)) if k == peer(1) && connected => break,
                Some(_) => {}
                None => panic!("the intruder's events closed"),
            }
        }
    })
    .await;
    sleep(Duration::from_millis(300)).await;
    spammer.abort();
    assert!(
        a.handle.connected_peers().is_empty(),
        "A holds no connection to the intruder"
    );
    match a.events.try_recv() {
        Err(tokio::sync::mpsc::error::TryRecvError::Empty) => {}
        other => panic!("A got an event from a refused peer: {other:?}"),
    }
    let stats = a.handle.stats();
    assert_eq!(stats.consensus.messages_in, 0);
    assert_eq!(stats.requests_in, 0);
    intruder.handle.shutdown().await;
    a.handle.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_messages_are_refused_both_ways() {
    let small = Limits {
        message_bytes_max: 1024,
        ..Limits::default()
    };
    let mut receiver = start(1, vec![], vec![peer(2)], small).await;
    // The sender allows big messages, so the receiver's own check is tested.
    let sender = start(2, vec![receiver.address()], vec![], Limits::default()).await;
    wait_connected(&receiver.handle, &[peer(2)]).await;
    wait_connected(&sender.handle, &[peer(1)]).await;

    let refused = receiver
        .handle
        .send(peer(2), Channel::Batches, vec![0; 1025]);
    assert_eq!(
        refused,
        Err(SendError::TooBig {
            size_bytes: 1025,
            size_bytes_max: 1024
        })
    );
    assert_eq!(receiver.handle.stats().batches.dropped_too_big, 1);

    sender
        .handle
        .send(peer(1), Channel::Batches, vec![7; 200_000])
        .expect("queued");
    sender
        .handle
        .send(peer(1), Channel::Batches, vec![1; 1024])
        .expect("queued");
    let (_, channel, bytes) = within(
        5,
        "the in-limit message",
        next_message(&mut receiver.events),
    )
    .await;
    assert_eq!(channel, Channel::Batches);
    assert_eq!(
        bytes,
        vec![1; 1024],
        "the oversized one was skipped, the stream stayed in sync"
    );
    assert_eq!(receiver.handle.stats().batches.dropped_too_big, 2);
    assert_eq!(receiver.handle.stats().batches.messages_in, 1);
    sender.handle.shutdown().await;
    receiver.handle.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restarted_peer_is_reconnected_automatically() {
    let b = start(2, vec![], vec![peer(1)], Limits::default()).await;
    let b_address = b.address();
    let mut a = start(1, vec![b_address.clone()], vec![], Limits::default()).await;
    wait_connected(&a.handle, &[peer(2)]).await;

    b.handle.shutdown().await;
    within(
        5,
        "A sees B go",
        next(&mut a.events, |e| match e {
            NetworkEvent::PeerDisconnected(k) if k == peer(2) => Some(()),
            _ => None,
        }),
    )
    .await;
    assert!(a.handle.connected_peers().is_empty());
    assert_eq!(
        a.handle.send(peer(2), Channel::Consensus, b"lost".to_vec()),
        Err(SendError::NotConnected(peer(2)))
    );
    sleep(Duration::from_millis(300)).await;

    let mut b = start_on(
        &b_address.address,
        2,
        vec![],
        vec![peer(1)],
        Limits::default(),
    )
    .await;
    within(
        8,
        "A redials B",
        next(&mut a.events, |e| match e {
            NetworkEvent::PeerConnected(k) if k == peer(2) => Some(()),
            _ => None,
        }),
    )
    .await;
    a.handle
        .send(peer(2), Channel::Consensus, b"again".to_vec())
        .expect("queued");
    let (from, _, bytes) = within(5, "B hears A", next_message(&mut b.events)).await;
    assert_eq!((from, bytes), (peer(1), b"again".to_vec()));
    a.handle.shutdown().await;
    b.handle.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flooding_peer_is_rate_limited_while_another_still_gets_through() {
    let rate = 50;
    let limits = Limits {
        inbound_messages_per_sec: rate,
        ..Limits::default()
    };
    let mut receiver = start(1, vec![], vec![peer(2), peer(3)], limits).await;
    let flooder = start(2, vec![receiver.address()], vec![], Limits::default()).await;
    let honest = start(3, vec![receiver.address()], vec![], Limits::default()).await;
    wait_connected(&receiver.handle, &[peer(2), peer(3)]).await;
    wait_connected(&flooder.handle, &[peer(1)]).await;
    wait_connected(&honest.handle, &[peer(1)]).await;

    let started = Instant::now();
    let flood = {
        let handle = flooder.handle.clone();
        tokio::spawn(async move {
            let mut queued = 0u32;
            while queued < 5_000 {
                match handle.send(peer(1), Channel::Consensus, b"spam".to_vec()) {
                    Ok(()) => queued += 1,
                    Err(SendError::Full { .. }) => sleep(Duration::from_millis(1)).await,
                    Err(other) => panic!("flood send failed: {other}"),
                }
            }
        })
    };
    within(10, "the flood is queued", flood)
        .await
        .expect("the flood task ran");
    for i in 0..20u8 {
        honest
            .handle
            .send(peer(1), Channel::Consensus, vec![i])
            .expect("queued");
    }
    let (mut from_flooder, mut from_honest) = (0u64, 0u8);
    within(10, "the honest peer's messages", async {
        while from_honest < 20 {
            let (from, _, bytes) = next_message(&mut receiver.events).await;
            if from == peer(3) {
                assert_eq!(bytes, vec![from_honest], "in order");
                from_honest += 1;
            } else {
                from_flooder += 1;
            }
        }
    })
    .await;
    let elapsed = started.elapsed().as_secs_f64();
    // Let the last flood frames be read, then count what was let through.
    sleep(Duration::from_millis(200)).await;
    while let Ok(event) = receiver.events.try_recv() {
        if matches!(event, NetworkEvent::Message { from, .. } if from == peer(2)) {
            from_flooder += 1;
        }
    }
    let allowed_max = f64::from(rate) * (1.0 + elapsed + 0.5);
    assert!(
        (from_flooder as f64) <= allowed_max,
        "{from_flooder} flood messages delivered in {elapsed:.2} s; the bucket allows {allowed_max:.0}"
    );
    let stats = receiver.handle.stats();
    assert!(
        stats.consensus.dropped_rate_limited > 1_000,
        "most of the flood is dropped: {stats:?}"
    );
    for node in [flooder, honest, receiver] {
        node.handle.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_fails_when_the_responder_is_dropped_and_times_out_when_unanswered() {
    let a = start(1, vec![], vec![peer(2)], Limits::default()).await;
    let quick = Limits {
        request_timeout: Duration::from_millis(500),
        ..Limits::default()
    };
    let b = start(2, vec![a.address()], vec![], quick).await;
    wait_connected(&b.handle, &[peer(1)]).await;
    wait_connected(&a.handle, &[peer(2)]).await;

    let mut a_events = a.events;
    let server = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Some(event) = a_events.recv().await {
            if let NetworkEvent::Request { bytes, reply, .. } = event {
                match bytes.as_slice() {
                    b"drop" => drop(reply),
                    // Keep the responder alive and never answer.
                    _ => held.push(reply),
                }
            }
        }
    });

    let started = Instant::now();
    let dropped = within(
        5,
        "dropped responder",
        b.handle.request(peer(1), b"drop".to_vec()),
    )
    .await;
    assert!(
        matches!(dropped, Err(RequestError::Failed { peer: p, .. }) if p == peer(1)),
        "a dropped responder is an error: {dropped:?}"
    );
    assert!(
        started.elapsed() < Duration::from_millis(450),
        "it fails before the timeout"
    );

    let started = Instant::now();
    let unanswered = within(
        5,
        "unanswered request",
        b.handle.request(peer(1), b"hang".to_vec()),
    )
    .await;
    assert_eq!(
        unanswered,
        Err(RequestError::Timeout {
            peer: peer(1),
            timeout: Duration::from_millis(500)
        })
    );
    assert!(
        started.elapsed() >= Duration::from_millis(450),
        "it waited for the timeout"
    );

    let nobody = b.handle.request(peer(7), b"x".to_vec()).await;
    assert_eq!(nobody, Err(RequestError::NotConnected(peer(7))));
    let too_big = b.handle.request(peer(1), vec![0; 64 * 1024 + 1]).await;
    assert!(matches!(too_big, Err(RequestError::TooBig { .. })));

    server.abort();
    b.handle.shutdown().await;
    a.handle.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn peer_removed_from_the_allow_list_is_disconnected() {
    let a = start(1, vec![], vec![peer(2)], Limits::default()).await;
    let mut b = start(2, vec![a.address()], vec![], Limits::default()).await;
    wait_connected(&a.handle, &[peer(2)]).await;
    a.handle.set_allowed(vec![peer(3)]);
    within(
        5,
        "B is dropped",
        next(&mut b.events, |e| match e {
            NetworkEvent::PeerDisconnected(k) if k == peer(1) => Some(()),
            _ => None,
        }),
    )
    .await;
    within(5, "A lets B go", async {
        while !a.handle.connected_peers().is_empty() {
            sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
    b.handle.shutdown().await;
    a.handle.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_beyond_the_per_peer_concurrency_limit_are_refused() {
    let one_at_a_time = Limits {
        concurrent_requests_per_peer: 1,
        ..Limits::default()
    };
    let a = start(1, vec![], vec![peer(2)], one_at_a_time).await;
    let quick = Limits {
        request_timeout: Duration::from_millis(800),
        ..Limits::default()
    };
    let b = start(2, vec![a.address()], vec![], quick).await;
    wait_connected(&a.handle, &[peer(2)]).await;
    wait_connected(&b.handle, &[peer(1)]).await;
    let mut a_events = a.events;
    let server = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Some(event) = a_events.recv().await {
            if let NetworkEvent::Request { reply, .. } = event {
                held.push(reply);
            }
        }
    });
    let first = b.handle.request(peer(1), b"first".to_vec());
    let second = async {
        // Sent once the first is surely being served.
        sleep(Duration::from_millis(200)).await;
        let started = Instant::now();
        (
            b.handle.request(peer(1), b"second".to_vec()).await,
            started.elapsed(),
        )
    };
    let (first, (second, second_took)) = within(5, "both requests end", async {
        tokio::join!(first, second)
    })
    .await;
    assert!(
        matches!(first, Err(RequestError::Timeout { .. })),
        "{first:?}"
    );
    assert!(
        matches!(second, Err(RequestError::Failed { .. })),
        "{second:?}"
    );
    assert!(
        second_took < Duration::from_millis(500),
        "refused at once: {second_took:?}"
    );
    assert_eq!(a.handle.stats().requests_in, 1);
    assert_eq!(a.handle.stats().requests_refused, 1);
    server.abort();
    b.handle.shutdown().await;
    a.handle.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn peers_dialing_each_other_end_up_connected_once_and_exchange_messages() {
    // Both listen first, then both dial: start B with A's address, and A
    // restarted with B's, so each has the other in its dial list.
    let a_first = start(1, vec![], vec![peer(2)], Limits::default()).await;
    let a_address = a_first.address();
    a_first.handle.shutdown().await;
    let mut b = start(2, vec![a_address.clone()], vec![], Limits::default()).await;
    let mut a = start_on(
        &a_address.address,
        1,
        vec![b.address()],
        vec![],
        Limits::default(),
    )
    .await;
    wait_connected(&a.handle, &[peer(2)]).await;
    wait_connected(&b.handle, &[peer(1)]).await;
    // Give a second connection time to form and settle.
    sleep(Duration::from_millis(300)).await;
    for i in 0..10u8 {
        a.handle
            .send(peer(2), Channel::Consensus, vec![i])
            .expect("queued");
        b.handle
            .send(peer(1), Channel::Batches, vec![i])
            .expect("queued");
    }
    for i in 0..10u8 {
        let (_, channel, bytes) = within(5, "A to B", next_message(&mut b.events)).await;
        assert_eq!((channel, bytes), (Channel::Consensus, vec![i]));
        let (_, channel, bytes) = within(5, "B to A", next_message(&mut a.events)).await;
        assert_eq!((channel, bytes), (Channel::Batches, vec![i]));
    }
    assert_eq!(a.handle.connected_peers(), vec![peer(2)]);
    assert_eq!(b.handle.connected_peers(), vec![peer(1)]);
    a.handle.shutdown().await;
    b.handle.shutdown().await;
}

#[tokio::test]
async fn listening_on_a_taken_port_says_so() {
    let a = start(1, vec![], vec![], Limits::default()).await;
    let taken = a.handle.listen_address().to_string();
    let config = NetworkConfig {
        key: key(2),
        listen: taken.parse().expect("a socket address"),
        dial: vec![],
        allowed: vec![],
        limits: Limits::default(),
    };
    let error = spawn(config).await.expect_err("the port is taken");
    let message = error.to_string();
    assert!(
        message.starts_with(&format!("cannot listen on {taken}: ")),
        "{message}"
    );
    a.handle.shutdown().await;
}

#[test]
fn keys_round_trip_through_hex_and_seed() {
    let network_key = key(5);
    let public = network_key.public();
    assert_eq!(
        PeerKey::from_hex(&public.to_hex()).expect("valid hex"),
        public
    );
    assert_eq!(NetworkKey::from_seed(network_key.seed()).public(), public);
    assert_ne!(
        NetworkKey::generate().public(),
        NetworkKey::generate().public()
    );
    let error = PeerKey::from_hex("abcd").expect_err("too short");
    assert!(
        error.to_string().contains("2 bytes, expected 32"),
        "{error}"
    );
    assert!(PeerKey::from_hex("zz").is_err());
}
