//! The swarm task and the handle that talks to it.
//!
//! One task owns the `Swarm` and runs one `tokio::select!` loop over swarm
//! events, handle commands, pending request replies and redial ticks. Each
//! connected peer has, per lane, a bounded outbound queue drained by a
//! writer task onto one long-lived stream; each inbound stream has a reader
//! task that checks sizes and rate limits and forwards messages as events
//! (both in `lanes`).

use std::{
    collections::{HashMap, HashSet, VecDeque},
    net::SocketAddr,
    pin::Pin,
    sync::{Arc, Mutex, PoisonError, RwLock},
    time::{Duration, Instant},
};

use futures::{Future, StreamExt, stream::FuturesUnordered};
use libp2p::{
    Multiaddr, PeerId, Swarm, SwarmBuilder,
    connection_limits::{self, ConnectionLimits},
    identity,
    multiaddr::Protocol,
    noise,
    request_response::{
        self, OutboundFailure, OutboundRequestId, ProtocolSupport, ResponseChannel,
    },
    swarm::{
        NetworkBehaviour, SwarmEvent,
        dial_opts::{DialOpts, PeerCondition},
    },
    tcp, yamux,
};
use tokio::{
    sync::{Notify, mpsc, oneshot},
    task::{JoinHandle, JoinSet},
};

use crate::{
    Channel, Limits, NetworkConfig, NetworkStats, PeerKey,
    error::{NetworkError, RequestError, Result, SendError},
    framing::{FETCH_PROTOCOL, FetchCodec, MESSAGE_PROTOCOL},
    gate::Gate,
    lanes::{accept_streams, write_lane},
    rate::PeerBuckets,
    stats::{Counters, bump},
};

/// The first redial delay, and the delay after a link that stayed up.
pub(crate) const BACKOFF_MIN: Duration = Duration::from_millis(100);
/// The longest redial delay; a link that stayed up this long resets the backoff.
pub(crate) const BACKOFF_MAX: Duration = Duration::from_secs(5);
/// Permissioned links stay up while idle: a year is "forever" for a
/// connection, without overflowing the timer arithmetic as `Duration::MAX` would.
const IDLE_CONNECTION_TIMEOUT: Duration = Duration::from_secs(365 * 24 * 60 * 60);
/// Commands from handles to the swarm task (only requests and shutdown).
const COMMAND_QUEUE: usize = 1024;
/// Connections per peer: two, so that both sides dialing at once is not an
/// error; libp2p keeps both and streams use either.
const CONNECTIONS_PER_PEER_MAX: u32 = 2;
/// Handshakes in progress from not yet authenticated remotes.
const PENDING_INCOMING_MAX: u32 = 64;
/// The least request streams per connection (libp2p's default).
const FETCH_STREAMS_PER_CONNECTION_MIN: usize = 100;
/// How long shutdown waits for connections to close cleanly.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(1);
/// How long `spawn` waits for the listener to report its address.
const LISTEN_TIMEOUT: Duration = Duration::from_secs(5);

/// An event for the application.
#[derive(Debug)]
pub enum NetworkEvent {
    /// A message from an allowed peer, within the size and rate limits.
    Message {
        /// The sender.
        from: PeerKey,
        /// The lane it came on.
        channel: Channel,
        /// The message.
        bytes: Vec<u8>,
    },
    /// A request from a peer; answer with `reply.send(bytes)` (dropping
    /// `reply` sends an error to the peer).
    Request {
        /// The asking peer.
        from: PeerKey,
        /// The request.
        bytes: Vec<u8>,
        /// Where the answer goes.
        reply: Responder,
    },
    /// The first connection to an allowed peer was established.
    PeerConnected(PeerKey),
    /// The last connection to a peer closed.
    PeerDisconnected(PeerKey),
}

/// The answer slot of one inbound request.
pub struct Responder {
    reply: oneshot::Sender<Vec<u8>>,
}

impl Responder {
    /// Sends the response. A response larger than `response_bytes_max`, or
    /// one sent after `request_timeout`, reaches the peer as an error.
    pub fn send(self, bytes: Vec<u8>) {
        // An error means the request already timed out or the network shut
        // down; the peer has been answered with an error either way.
        let _ = self.reply.send(bytes);
    }
}

impl std::fmt::Debug for Responder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Responder").finish_non_exhaustive()
    }
}

/// One connected peer as seen by handles and stream tasks.
struct PeerEntry {
    /// The peer's libp2p id, to check the allow-list.
    id: PeerId,
    /// Outbound queues, indexed by `Channel::index`.
    lanes: [mpsc::Sender<Vec<u8>>; 2],
}

/// State shared by the swarm task, the stream tasks and the handles.
pub(crate) struct Shared {
    local_key: PeerKey,
    pub(crate) limits: Limits,
    pub(crate) counters: Counters,
    /// Who may be connected: the allow-list plus the dial list.
    allowed: RwLock<HashSet<PeerId>>,
    /// The dial list's peers, always allowed.
    dial_peers: HashSet<PeerId>,
    /// Signals the swarm task that `allowed` changed.
    allowed_changed: Notify,
    peers: RwLock<HashMap<PeerKey, PeerEntry>>,
    /// Inbound rate limits per peer, shared by the peer's reader tasks.
    pub(crate) buckets: Mutex<HashMap<PeerId, Arc<Mutex<PeerBuckets>>>>,
}

/// Locks ignore poisoning: every critical section leaves the data valid.
pub(crate) fn read<T>(lock: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    lock.read().unwrap_or_else(PoisonError::into_inner)
}

pub(crate) fn write<T>(lock: &RwLock<T>) -> std::sync::RwLockWriteGuard<'_, T> {
    lock.write().unwrap_or_else(PoisonError::into_inner)
}

pub(crate) fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Shared {
    pub(crate) fn is_allowed(&self, peer: &PeerId) -> bool {
        read(&self.allowed).contains(peer)
    }
}

enum Command {
    Request {
        to: PeerKey,
        bytes: Vec<u8>,
        reply: oneshot::Sender<Result<Vec<u8>, RequestError>>,
    },
    Shutdown,
}

/// The handle to a running network; cheap to clone. The swarm task stops
/// on `shutdown` or when every handle has been dropped.
#[derive(Clone)]
pub struct NetworkHandle {
    shared: Arc<Shared>,
    listen_address: SocketAddr,
    commands: mpsc::Sender<Command>,
    task: Arc<Mutex<Option<JoinHandle<()>>>>,
}

impl std::fmt::Debug for NetworkHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NetworkHandle")
            .field("local_key", &self.shared.local_key)
            .field("listen_address", &self.listen_address)
            .finish_non_exhaustive()
    }
}

impl NetworkHandle {
    /// This node's public key.
    pub fn local_key(&self) -> PeerKey {
        self.shared.local_key
    }

    /// The address actually bound (with the real port when 0 was asked).
    pub fn listen_address(&self) -> SocketAddr {
        self.listen_address
    }

    /// Queues a message to one peer; never blocks. Err if not connected,
    /// queue full, or too big.
    pub fn send(&self, to: PeerKey, channel: Channel, bytes: Vec<u8>) -> Result<(), SendError> {
        let counters = self.shared.counters.lane(channel);
        let size_bytes_max = self.shared.limits.message_bytes_max;
        if bytes.len() > size_bytes_max {
            bump(&counters.dropped_too_big);
            return Err(SendError::TooBig {
                size_bytes: bytes.len(),
                size_bytes_max,
            });
        }
        let peers = read(&self.shared.peers);
        let entry = peers
            .get(&to)
            .filter(|e| self.shared.is_allowed(&e.id))
            .ok_or(SendError::NotConnected(to))?;
        match entry.lanes[channel.index()].try_send(bytes) {
            Ok(()) => Ok(()),
            Err(mpsc::error::TrySendError::Full(_)) => {
                bump(&counters.dropped_full);
                Err(SendError::Full {
                    peer: to,
                    channel,
                    capacity: self.shared.limits.outbound_queue,
                })
            }
            Err(mpsc::error::TrySendError::Closed(_)) => Err(SendError::NotConnected(to)),
        }
    }

    /// Queues to every connected allowed peer (not self); returns how many
    /// it was queued to. Peers whose queue is full are skipped and counted.
    pub fn broadcast(&self, channel: Channel, bytes: Vec<u8>) -> usize {
        let counters = self.shared.counters.lane(channel);
        if bytes.len() > self.shared.limits.message_bytes_max {
            bump(&counters.dropped_too_big);
            return 0;
        }
        let peers = read(&self.shared.peers);
        let mut queued = 0;
        // A peer just removed by `set_allowed` is skipped while the swarm
        // task disconnects it.
        for entry in peers.values().filter(|e| self.shared.is_allowed(&e.id)) {
            match entry.lanes[channel.index()].try_send(bytes.clone()) {
                Ok(()) => queued += 1,
                Err(mpsc::error::TrySendError::Full(_)) => bump(&counters.dropped_full),
                Err(mpsc::error::TrySendError::Closed(_)) => {}
            }
        }
        queued
    }

    /// Request-response (block/batch fetch) with the configured timeout.
    pub async fn request(&self, to: PeerKey, bytes: Vec<u8>) -> Result<Vec<u8>, RequestError> {
        let limits = self.shared.limits;
        if bytes.len() > limits.request_bytes_max {
            return Err(RequestError::TooBig {
                size_bytes: bytes.len(),
                size_bytes_max: limits.request_bytes_max,
            });
        }
        let (reply, answer) = oneshot::channel();
        self.commands
            .send(Command::Request { to, bytes, reply })
            .await
            .map_err(|_| RequestError::Shutdown)?;
        // libp2p enforces the timeout; this outer one, a little longer, only
        // guards against an answer lost inside the swarm task.
        let guard = limits.request_timeout + Duration::from_secs(1);
        match tokio::time::timeout(guard, answer).await {
            Ok(Ok(result)) => result,
            Ok(Err(_)) => Err(RequestError::Shutdown),
            Err(_) => Err(RequestError::Timeout {
                peer: to,
                timeout: limits.request_timeout,
            }),
        }
    }

    /// Replaces the allow-list (epoch change); peers no longer allowed are
    /// disconnected. Dial-list peers stay allowed. Keys that are not valid
    /// ed25519 points are skipped with a warning.
    pub fn set_allowed(&self, allowed: Vec<PeerKey>) {
        let mut ids: HashSet<PeerId> = self.shared.dial_peers.clone();
        for key in allowed {
            match key.to_peer_id() {
                Ok(id) => {
                    ids.insert(id);
                }
                Err(error) => tracing::warn!(%error, "set_allowed: skipped an invalid key"),
            }
        }
        *write(&self.shared.allowed) = ids;
        self.shared.allowed_changed.notify_one();
    }

    /// The peers with at least one open connection, sorted.
    pub fn connected_peers(&self) -> Vec<PeerKey> {
        let mut keys: Vec<PeerKey> = read(&self.shared.peers).keys().copied().collect();
        keys.sort();
        keys
    }

    /// Counters for metrics.
    pub fn stats(&self) -> NetworkStats {
        self.shared.counters.snapshot()
    }

    /// Stops the swarm task and closes connections; resolves when stopped.
    pub async fn shutdown(self) {
        // An error means the task already stopped.
        let _ = self.commands.send(Command::Shutdown).await;
        let task = lock(&self.task).take();
        if let Some(task) = task
            && let Err(error) = task.await
        {
            tracing::error!(%error, "the network task failed");
        }
    }
}

#[derive(NetworkBehaviour)]
struct Behaviour {
    /// First, so a refused peer is turned away before the others set up a
    /// handler for it.
    gate: Gate,
    limits: connection_limits::Behaviour,
    streams: libp2p_stream::Behaviour,
    fetch: request_response::Behaviour<FetchCodec>,
}

/// A dial-list peer and when to dial it next.
struct DialTarget {
    key: PeerKey,
    address: Multiaddr,
    backoff: Duration,
    next_attempt: Instant,
    dialing: bool,
    connected_since: Option<Instant>,
}

impl DialTarget {
    fn retry_later(&mut self, now: Instant) {
        self.dialing = false;
        self.next_attempt = now + self.backoff;
        self.backoff = (self.backoff * 2).min(BACKOFF_MAX);
    }
}

/// Where the answer to one outbound request goes.
type RequestReply = oneshot::Sender<Result<Vec<u8>, RequestError>>;

type ReplyFuture =
    Pin<Box<dyn Future<Output = (PeerId, ResponseChannel<Vec<u8>>, Option<Vec<u8>>)> + Send>>;

/// Spawns the swarm on the current tokio runtime.
pub async fn spawn(config: NetworkConfig) -> Result<(NetworkHandle, mpsc::Receiver<NetworkEvent>)> {
    let NetworkConfig {
        key,
        listen,
        dial,
        allowed,
        limits,
    } = config;
    let local_key = key.public();
    let local_id = local_key.to_peer_id()?;

    let now = Instant::now();
    let mut targets = HashMap::new();
    for peer in dial {
        let id = peer.key.to_peer_id()?;
        if id == local_id {
            continue;
        }
        let address = resolve(&peer.key, &peer.address).await?;
        targets.insert(
            id,
            DialTarget {
                key: peer.key,
                address,
                backoff: BACKOFF_MIN,
                next_attempt: now,
                dialing: false,
                connected_since: None,
            },
        );
    }
    let dial_peers: HashSet<PeerId> = targets.keys().copied().collect();
    let mut allowed_ids = dial_peers.clone();
    for key in allowed {
        let id = key.to_peer_id()?;
        if id != local_id {
            allowed_ids.insert(id);
        }
    }

    let shared = Arc::new(Shared {
        local_key,
        limits,
        counters: Counters::default(),
        allowed: RwLock::new(allowed_ids),
        dial_peers,
        allowed_changed: Notify::new(),
        peers: RwLock::new(HashMap::new()),
        buckets: Mutex::new(HashMap::new()),
    });

    let codec = FetchCodec {
        request_bytes_max: limits.request_bytes_max,
        response_bytes_max: limits.response_bytes_max,
    };
    let fetch_config = request_response::Config::default()
        .with_request_timeout(limits.request_timeout)
        // Inbound requests beyond the per-peer limit are refused by the
        // swarm task; this bounds the request streams (inbound and outbound
        // together) that libp2p keeps open per connection, and is kept at
        // least at libp2p's default so a node fetching many blocks at once
        // is not refused by its own side.
        .with_max_concurrent_streams(
            limits
                .concurrent_requests_per_peer
                .saturating_mul(4)
                .max(FETCH_STREAMS_PER_CONNECTION_MIN),
        );
    let behaviour = Behaviour {
        gate: Gate {
            shared: shared.clone(),
        },
        limits: connection_limits::Behaviour::new(
            ConnectionLimits::default()
                .with_max_established_per_peer(Some(CONNECTIONS_PER_PEER_MAX))
                .with_max_pending_incoming(Some(PENDING_INCOMING_MAX)),
        ),
        streams: libp2p_stream::Behaviour::new(),
        fetch: request_response::Behaviour::with_codec(
            codec,
            [(FETCH_PROTOCOL, ProtocolSupport::Full)],
            fetch_config,
        ),
    };

    let keypair = identity::Keypair::from(key.keypair());
    let mut swarm = SwarmBuilder::with_existing_identity(keypair)
        .with_tokio()
        .with_tcp(
            tcp::Config::default().nodelay(true),
            noise::Config::new,
            yamux::Config::default,
        )
        .map_err(|e| NetworkError::Transport(e.to_string()))?
        .with_behaviour(|_| behaviour)
        .map_err(|e| NetworkError::Transport(e.to_string()))?
        .with_swarm_config(|c| c.with_idle_connection_timeout(IDLE_CONNECTION_TIMEOUT))
        .build();

    let listen_error = |reason: String| NetworkError::Listen {
        address: listen,
        reason,
    };
    // libp2p-tcp sets SO_REUSEPORT on listeners, so a second node on a
    // taken port would bind and silently share it. A plain bind first (no
    // SO_REUSEPORT) fails if anyone holds the port.
    if listen.port() != 0 {
        drop(std::net::TcpListener::bind(listen).map_err(|e| listen_error(e.to_string()))?);
    }
    swarm
        .listen_on(socket_multiaddr(listen))
        .map_err(|e| match e {
            libp2p::TransportError::Other(io) => listen_error(io.to_string()),
            other => listen_error(other.to_string()),
        })?;
    let listen_address = wait_for_listen_address(&mut swarm, listen)
        .await
        .map_err(listen_error)?;

    let mut control = swarm.behaviour().streams.new_control();
    let incoming = control
        .accept(MESSAGE_PROTOCOL)
        .map_err(|e| NetworkError::Transport(e.to_string()))?;

    let (events_tx, events_rx) = mpsc::channel(limits.inbound_queue.max(1));
    let (commands_tx, commands_rx) = mpsc::channel(COMMAND_QUEUE);
    let runner = Runner {
        swarm,
        shared: shared.clone(),
        control,
        events: events_tx,
        pending_events: VecDeque::new(),
        tasks: JoinSet::new(),
        replies: FuturesUnordered::new(),
        requests: HashMap::new(),
        serving: HashMap::new(),
        targets,
    };
    let task = tokio::spawn(runner.run(commands_rx, incoming));
    tracing::info!(key = %local_key, %listen_address, "network started");
    let handle = NetworkHandle {
        shared,
        listen_address,
        commands: commands_tx,
        task: Arc::new(Mutex::new(Some(task))),
    };
    Ok((handle, events_rx))
}

fn socket_multiaddr(address: SocketAddr) -> Multiaddr {
    Multiaddr::empty()
        .with(Protocol::from(address.ip()))
        .with(Protocol::Tcp(address.port()))
}

/// `host:port` to a TCP multiaddr; a host name is resolved now, once.
async fn resolve(key: &PeerKey, address: &str) -> Result<Multiaddr> {
    if let Ok(socket) = address.parse::<SocketAddr>() {
        return Ok(socket_multiaddr(socket));
    }
    let bad = |reason: String| NetworkError::BadAddress {
        peer: key.to_hex(),
        address: address.to_owned(),
        reason,
    };
    let mut found = tokio::net::lookup_host(address)
        .await
        .map_err(|e| bad(format!("expected host:port ({e})")))?;
    found
        .next()
        .map(socket_multiaddr)
        .ok_or_else(|| bad("the host name resolves to no address".to_owned()))
}

async fn wait_for_listen_address(
    swarm: &mut Swarm<Behaviour>,
    listen: SocketAddr,
) -> std::result::Result<SocketAddr, String> {
    let wait = async {
        loop {
            match swarm.select_next_some().await {
                SwarmEvent::NewListenAddr { address, .. } => {
                    let port = address.iter().find_map(|p| match p {
                        Protocol::Tcp(port) => Some(port),
                        _ => None,
                    });
                    if let Some(port) = port {
                        return Ok(SocketAddr::new(listen.ip(), port));
                    }
                }
                SwarmEvent::ListenerClosed { reason, .. } => {
                    return Err(match reason {
                        Ok(()) => "the listener closed".to_owned(),
                        Err(e) => e.to_string(),
                    });
                }
                SwarmEvent::ListenerError { error, .. } => return Err(error.to_string()),
                _ => {}
            }
        }
    };
    tokio::time::timeout(LISTEN_TIMEOUT, wait)
        .await
        .map_err(|_| format!("no listen address after {LISTEN_TIMEOUT:?}"))?
}

/// The swarm task's state.
struct Runner {
    swarm: Swarm<Behaviour>,
    shared: Arc<Shared>,
    control: libp2p_stream::Control,
    events: mpsc::Sender<NetworkEvent>,
    /// Connection and request events waiting for room in `events`, so the
    /// swarm task never blocks on a slow application; bounded by
    /// `inbound_queue`, beyond which events are dropped and counted.
    pending_events: VecDeque<NetworkEvent>,
    /// Stream reader and writer tasks; dropped (aborted) on shutdown.
    tasks: JoinSet<()>,
    /// Inbound requests waiting for the application's answer.
    replies: FuturesUnordered<ReplyFuture>,
    /// Outbound requests waiting for the peer's answer.
    requests: HashMap<OutboundRequestId, (PeerKey, RequestReply)>,
    /// Inbound requests being served, per peer.
    serving: HashMap<PeerId, usize>,
    targets: HashMap<PeerId, DialTarget>,
}

impl Runner {
    async fn run(
        mut self,
        mut commands: mpsc::Receiver<Command>,
        incoming: libp2p_stream::IncomingStreams,
    ) {
        // Inbound streams are taken by a task of their own: libp2p-stream
        // holds one stream at a time for the application and drops the
        // next if that one has not been taken yet.
        self.tasks.spawn(accept_streams(
            incoming,
            self.shared.clone(),
            self.events.clone(),
        ));
        let mut dial_tick = tokio::time::interval(BACKOFF_MIN);
        dial_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        // A clone, so that a reserved slot borrows it and not `self`.
        let events = self.events.clone();
        loop {
            tokio::select! {
                command = commands.recv() => match command {
                    Some(Command::Request { to, bytes, reply }) => self.request(to, bytes, reply),
                    // Shutdown, or every handle dropped.
                    Some(Command::Shutdown) | None => break,
                },
                () = self.shared.allowed_changed.notified() => self.disconnect_not_allowed(),
                permit = events.reserve(), if !self.pending_events.is_empty() => match permit {
                    Ok(permit) => {
                        if let Some(event) = self.pending_events.pop_front() {
                            permit.send(event);
                        }
                    }
                    // The application dropped its receiver; nothing to deliver to.
                    Err(_) => self.pending_events.clear(),
                },
                Some((peer, channel, reply)) = self.replies.next(), if !self.replies.is_empty() => {
                    self.replied(peer, channel, reply);
                }
                Some(joined) = self.tasks.join_next(), if !self.tasks.is_empty() => {
                    if let Err(error) = joined
                        && error.is_panic()
                    {
                        tracing::error!(%error, "a network stream task panicked");
                    }
                }
                _ = dial_tick.tick() => self.dial_due(),
                event = self.swarm.select_next_some() => self.swarm_event(event),
            }
        }
        self.stop().await;
    }

    async fn stop(mut self) {
        self.tasks.abort_all();
        write(&self.shared.peers).clear();
        // Dropping the senders answers every waiting `request` with Shutdown.
        self.requests.clear();
        let connected: Vec<PeerId> = self.swarm.connected_peers().copied().collect();
        for peer in connected {
            // An error means it is already disconnected.
            let _ = self.swarm.disconnect_peer_id(peer);
        }
        let grace = tokio::time::sleep(SHUTDOWN_GRACE);
        tokio::pin!(grace);
        while self.swarm.connected_peers().next().is_some() {
            tokio::select! {
                () = &mut grace => break,
                _ = self.swarm.select_next_some() => {}
            }
        }
        tracing::info!(key = %self.shared.local_key, "network stopped");
    }

    /// Queues an event for the application without blocking the swarm task.
    fn emit(&mut self, event: NetworkEvent) {
        if !self.pending_events.is_empty() {
            // Keep the order: behind the events already waiting.
            self.queue_event(event);
            return;
        }
        match self.events.try_send(event) {
            // Closed: the application dropped its receiver.
            Ok(()) | Err(mpsc::error::TrySendError::Closed(_)) => {}
            Err(mpsc::error::TrySendError::Full(event)) => self.queue_event(event),
        }
    }

    fn queue_event(&mut self, event: NetworkEvent) {
        if self.pending_events.len() < self.shared.limits.inbound_queue.max(1) {
            self.pending_events.push_back(event);
            return;
        }
        // Dropping a request's responder answers the peer with an error.
        let counters = &self.shared.counters;
        match event {
            NetworkEvent::Request { .. } => bump(&counters.requests_refused),
            _ => bump(&counters.events_dropped),
        }
        tracing::warn!("events channel full: dropped a network event");
    }

    fn request(
        &mut self,
        to: PeerKey,
        bytes: Vec<u8>,
        reply: oneshot::Sender<Result<Vec<u8>, RequestError>>,
    ) {
        let peer = match to.to_peer_id() {
            Ok(peer) if self.swarm.is_connected(&peer) => peer,
            _ => {
                // The requester may have given up; nothing to do then.
                let _ = reply.send(Err(RequestError::NotConnected(to)));
                return;
            }
        };
        let id = self.swarm.behaviour_mut().fetch.send_request(&peer, bytes);
        bump(&self.shared.counters.requests_out);
        self.requests.insert(id, (to, reply));
    }

    fn replied(&mut self, peer: PeerId, channel: ResponseChannel<Vec<u8>>, reply: Option<Vec<u8>>) {
        if let Some(serving) = self.serving.get_mut(&peer) {
            *serving = serving.saturating_sub(1);
        }
        match reply {
            Some(bytes) => {
                // Err means the connection closed meanwhile; the peer's
                // request has failed on its side already.
                let _ = self
                    .swarm
                    .behaviour_mut()
                    .fetch
                    .send_response(channel, bytes);
            }
            // Dropping the channel answers the peer with an error.
            None => drop(channel),
        }
    }

    fn disconnect_not_allowed(&mut self) {
        let connected: Vec<PeerId> = self.swarm.connected_peers().copied().collect();
        for peer in connected {
            if !self.shared.is_allowed(&peer) {
                tracing::info!(%peer, "disconnecting a peer removed from the allow-list");
                let _ = self.swarm.disconnect_peer_id(peer);
            }
        }
    }

    fn dial_due(&mut self) {
        let now = Instant::now();
        let due: Vec<PeerId> = self
            .targets
            .iter()
            .filter(|(id, t)| !t.dialing && t.next_attempt <= now && !self.swarm.is_connected(id))
            .map(|(id, _)| *id)
            .collect();
        for id in due {
            let Some(target) = self.targets.get_mut(&id) else {
                continue;
            };
            let options = DialOpts::peer_id(id)
                .addresses(vec![target.address.clone()])
                .condition(PeerCondition::DisconnectedAndNotDialing)
                .build();
            match self.swarm.dial(options) {
                Ok(()) => target.dialing = true,
                Err(error) => {
                    tracing::debug!(peer = %target.key, %error, "dial not started");
                    target.retry_later(now);
                }
            }
        }
    }

    fn swarm_event(&mut self, event: SwarmEvent<BehaviourEvent>) {
        match event {
            SwarmEvent::ConnectionEstablished {
                peer_id,
                num_established,
                endpoint,
                ..
            } => {
                if let Some(target) = self.targets.get_mut(&peer_id) {
                    target.dialing = false;
                    target.connected_since.get_or_insert_with(Instant::now);
                }
                if num_established.get() == 1 {
                    tracing::debug!(peer = %peer_id, address = %endpoint.get_remote_address(), "peer connected");
                    self.peer_connected(peer_id);
                }
            }
            SwarmEvent::ConnectionClosed {
                peer_id,
                num_established: 0,
                cause,
                ..
            } => {
                tracing::debug!(peer = %peer_id, ?cause, "peer disconnected");
                self.peer_disconnected(peer_id);
            }
            SwarmEvent::OutgoingConnectionError {
                peer_id: Some(peer_id),
                error,
                ..
            } => {
                if let Some(target) = self.targets.get_mut(&peer_id) {
                    tracing::debug!(peer = %target.key, %error, retry_in = ?target.backoff, "dial failed");
                    if !self.swarm.is_connected(&peer_id) {
                        target.retry_later(Instant::now());
                    } else {
                        target.dialing = false;
                    }
                }
            }
            SwarmEvent::IncomingConnectionError {
                error,
                send_back_addr,
                ..
            } => {
                tracing::debug!(%error, remote = %send_back_addr, "inbound connection failed");
            }
            SwarmEvent::Behaviour(BehaviourEvent::Fetch(event)) => self.fetch_event(event),
            _ => {}
        }
    }

    fn peer_connected(&mut self, peer: PeerId) {
        let Some(key) = PeerKey::from_peer_id(&peer) else {
            // The gate only admits ids built from ed25519 keys.
            tracing::warn!(%peer, "connected peer has no ed25519 key; disconnecting");
            let _ = self.swarm.disconnect_peer_id(peer);
            return;
        };
        let limits = self.shared.limits;
        let capacity = limits.outbound_queue.max(1);
        let (consensus_tx, consensus_rx) = mpsc::channel(capacity);
        let (batches_tx, batches_rx) = mpsc::channel(capacity);
        let entry = PeerEntry {
            id: peer,
            lanes: [consensus_tx, batches_tx],
        };
        write(&self.shared.peers).insert(key, entry);
        for (channel, queue) in [
            (Channel::Consensus, consensus_rx),
            (Channel::Batches, batches_rx),
        ] {
            self.tasks.spawn(write_lane(
                self.control.clone(),
                peer,
                key,
                channel,
                queue,
                self.shared.clone(),
            ));
        }
        self.emit(NetworkEvent::PeerConnected(key));
    }

    fn peer_disconnected(&mut self, peer: PeerId) {
        self.serving.remove(&peer);
        lock(&self.shared.buckets).remove(&peer);
        let now = Instant::now();
        if let Some(target) = self.targets.get_mut(&peer) {
            // A link that stayed up a while starts the backoff over; one
            // that drops at once (the remote refusing us) keeps doubling.
            if target
                .connected_since
                .take()
                .is_some_and(|since| now.duration_since(since) >= BACKOFF_MAX)
            {
                target.backoff = BACKOFF_MIN;
            }
            target.retry_later(now);
        }
        let Some(key) = PeerKey::from_peer_id(&peer) else {
            return;
        };
        // Removing the entry drops the queues' senders, which ends the
        // peer's writer tasks.
        if write(&self.shared.peers).remove(&key).is_some() {
            self.emit(NetworkEvent::PeerDisconnected(key));
        }
    }

    fn fetch_event(&mut self, event: request_response::Event<Vec<u8>, Vec<u8>>) {
        match event {
            request_response::Event::Message { peer, message, .. } => match message {
                request_response::Message::Request {
                    request, channel, ..
                } => self.inbound_request(peer, request, channel),
                request_response::Message::Response {
                    request_id,
                    response,
                } => {
                    if let Some((_, reply)) = self.requests.remove(&request_id) {
                        let _ = reply.send(Ok(response));
                    }
                }
            },
            request_response::Event::OutboundFailure {
                request_id, error, ..
            } => {
                if let Some((peer, reply)) = self.requests.remove(&request_id) {
                    let error = match error {
                        OutboundFailure::Timeout => RequestError::Timeout {
                            peer,
                            timeout: self.shared.limits.request_timeout,
                        },
                        OutboundFailure::DialFailure => RequestError::NotConnected(peer),
                        other => RequestError::Failed {
                            peer,
                            reason: other.to_string(),
                        },
                    };
                    let _ = reply.send(Err(error));
                }
            }
            request_response::Event::InboundFailure { peer, error, .. } => {
                tracing::debug!(%peer, %error, "inbound request failed");
            }
            request_response::Event::ResponseSent { .. } => {}
        }
    }

    fn inbound_request(
        &mut self,
        peer: PeerId,
        request: Vec<u8>,
        channel: ResponseChannel<Vec<u8>>,
    ) {
        let counters = &self.shared.counters;
        let Some(key) = PeerKey::from_peer_id(&peer).filter(|_| self.shared.is_allowed(&peer))
        else {
            return;
        };
        let serving = self.serving.entry(peer).or_insert(0);
        if *serving >= self.shared.limits.concurrent_requests_per_peer {
            bump(&counters.requests_refused);
            tracing::debug!(%key, "refused a request: too many in progress from this peer");
            // Dropping the channel answers the peer with an error.
            return;
        }
        *serving += 1;
        bump(&counters.requests_in);
        let (reply, answer) = oneshot::channel();
        let timeout = self.shared.limits.request_timeout;
        self.replies.push(Box::pin(async move {
            let bytes = tokio::time::timeout(timeout, answer)
                .await
                .ok()
                .and_then(Result::ok);
            (peer, channel, bytes)
        }));
        self.emit(NetworkEvent::Request {
            from: key,
            bytes: request,
            reply: Responder { reply },
        });
    }
}
