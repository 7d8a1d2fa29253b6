//! Where replayed blocks come from. Replay itself does not care: it takes
//! a [`BlockSource`], which yields each committed block in height order.
//!
//! - [`StoreSource`]: a node's data directory (an observer's, or a stopped
//!   validator's), read through `yuchain-storage`; it also offers the
//!   stored account state, which replay compares with its own at the end;
//! - [`GrpcSource`]: any node's `StreamBlocks`, on a thread of its own,
//!   into a bounded queue.
//!
//! Everything a source yields is untrusted: sizes are bounded and nothing
//! is unwrapped.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::mpsc::{Receiver, sync_channel};

use prost::Message as _;
use yuchain_proto::pb;
use yuchain_storage::{BlockStore, RocksStore};

use super::error::{AuditError, Result};

/// The most bytes of one stored or streamed block (the gateway's and the
/// CLI's own bound for a block message).
pub const BLOCK_BYTES_MAX: usize = 64 << 20;
/// Blocks a gRPC source reads ahead of replay.
const STREAM_AHEAD_BLOCKS: usize = 4;

/// Called with each stored state entry (key, value); an error stops the
/// iteration.
pub type StateVisitor<'a> = &'a mut dyn FnMut(&[u8], &[u8]) -> Result<()>;

/// One committed block as a source holds it.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct SourceBlock {
    /// Its height (0: genesis).
    pub height: u64,
    /// The ledger block (none at genesis).
    pub block: Option<pb::Block>,
    /// The stored receipts, one per transaction.
    pub receipts: Vec<pb::Receipt>,
    /// The stored state root after it.
    pub state_root: Vec<u8>,
    /// The consensus block with its finality certificate (empty at genesis).
    pub certified: Vec<u8>,
    /// The author's sequence number of each batch the block executed, in
    /// order (what, with the transactions, gives each batch's digest).
    pub batch_sequences: Vec<u64>,
    /// The stored batch spans (a data directory has them; a stream does
    /// not), checked against what the certificates give.
    pub spans: Option<Vec<pb::BatchSpan>>,
}

impl SourceBlock {
    /// As the `StreamBlocks` message a node sends for it.
    pub fn into_message(self) -> pb::StreamBlocksResponse {
        pb::StreamBlocksResponse {
            height: self.height,
            block: self.block,
            receipts: self.receipts,
            state_root: self.state_root,
            certified: self.certified,
            batch_sequences: self.batch_sequences,
        }
    }

    /// From a node's stored record of a committed block.
    pub fn from_record(height: u64, record: pb::CommittedBlockRecord) -> SourceBlock {
        let (block, receipts) = record
            .ledger
            .map(|ledger| (ledger.block, ledger.receipts))
            .unwrap_or_default();
        SourceBlock {
            height,
            block,
            receipts,
            state_root: record.state_root,
            certified: record.certified,
            batch_sequences: record.batches.iter().map(|span| span.sequence).collect(),
            spans: Some(record.batches),
        }
    }
}

/// Committed blocks in height order.
pub trait BlockSource: Send {
    /// What it is, for messages ("data directory D", "node URL").
    fn name(&self) -> String;
    /// The highest height it holds now.
    fn head(&mut self) -> Result<u64>;
    /// Starts reading at `from`; the next [`BlockSource::next_block`] is of
    /// that height.
    fn start(&mut self, from: u64) -> Result<()>;
    /// The next block, or `None` past the head (or the stream's end).
    fn next_block(&mut self) -> Result<Option<SourceBlock>>;
    /// Calls `visit` with every stored state entry (key, value) in key
    /// order and returns the height they are of; `None` for a source with
    /// no state (a stream).
    fn for_each_state(&mut self, visit: StateVisitor<'_>) -> Result<Option<u64>>;
}

/// Blocks from a store: a node's RocksDB, or any [`BlockStore`]. Records
/// are read and decoded ahead, on a thread of their own, so reading
/// overlaps verification.
pub struct StoreSource {
    name: String,
    store: Arc<dyn BlockStore>,
    ahead: Option<Receiver<Result<Option<SourceBlock>>>>,
    reader: Option<std::thread::JoinHandle<()>>,
}

impl StoreSource {
    /// Opens a node's data directory: its home (holding `db/`) or the
    /// database itself. Stop the node first: RocksDB admits one process.
    pub fn open(path: &Path) -> Result<StoreSource> {
        let database: PathBuf = if path.join("db").is_dir() {
            path.join("db")
        } else {
            path.to_path_buf()
        };
        let name = format!("the data directory {}", path.display());
        let store = RocksStore::open(&database).map_err(|error| AuditError::Source {
            source_name: name.clone(),
            reason: format!(
                "{error} (is a node still running on it? stop it, or audit through its \
                 gateway with --node)"
            ),
        })?;
        Ok(StoreSource::new(name, Arc::new(store)))
    }

    /// Reads from `store`.
    pub fn new(name: String, store: Arc<dyn BlockStore>) -> StoreSource {
        StoreSource {
            name,
            store,
            ahead: None,
            reader: None,
        }
    }

    fn failed(&self, reason: impl std::fmt::Display) -> AuditError {
        AuditError::Source {
            source_name: self.name.clone(),
            reason: reason.to_string(),
        }
    }

    /// Stops the read-ahead thread (it ends at its next send).
    fn stop_reader(&mut self) {
        self.ahead = None;
        if let Some(reader) = self.reader.take() {
            let _ = reader.join();
        }
    }

    /// The record at `height` in `store`, decoded (a record that does not
    /// decode is a finding about the chain, not a read failure).
    fn read(store: &dyn BlockStore, name: &str, height: u64) -> Result<Option<SourceBlock>> {
        let bytes = store.block(height).map_err(|error| AuditError::Source {
            source_name: name.to_string(),
            reason: error.to_string(),
        })?;
        let Some(bytes) = bytes else {
            return Ok(None);
        };
        if bytes.len() > BLOCK_BYTES_MAX {
            return Err(super::Discrepancy::at(
                height,
                "stored block record",
                format!("at most {BLOCK_BYTES_MAX} bytes"),
                format!("{} bytes", bytes.len()),
            )
            .into());
        }
        let record = pb::CommittedBlockRecord::decode(bytes.as_slice()).map_err(|error| {
            super::Discrepancy::at(
                height,
                "stored block record",
                "a CommittedBlockRecord",
                format!("bytes that do not decode ({error})"),
            )
        })?;
        Ok(Some(SourceBlock::from_record(height, record)))
    }
}

impl BlockSource for StoreSource {
    fn name(&self) -> String {
        self.name.clone()
    }

    fn head(&mut self) -> Result<u64> {
        let head = self.store.head().map_err(|error| self.failed(error))?;
        head.map(|head| head.height)
            .ok_or_else(|| self.failed("the store is empty (no genesis)"))
    }

    fn start(&mut self, from: u64) -> Result<()> {
        self.stop_reader();
        let (sender, receiver) = sync_channel(STREAM_AHEAD_BLOCKS);
        let store = Arc::clone(&self.store);
        let name = self.name.clone();
        let reader = std::thread::Builder::new()
            .name("audit-read".into())
            .spawn(move || {
                let mut height = from;
                loop {
                    let block = StoreSource::read(store.as_ref(), &name, height);
                    let last = !matches!(block, Ok(Some(_)));
                    // A send fails once replay stopped reading: stop too.
                    if sender.send(block).is_err() || last {
                        return;
                    }
                    height = height.saturating_add(1);
                }
            })
            .map_err(|error| self.failed(error))?;
        self.ahead = Some(receiver);
        self.reader = Some(reader);
        Ok(())
    }

    fn next_block(&mut self) -> Result<Option<SourceBlock>> {
        match &self.ahead {
            Some(ahead) => ahead.recv().unwrap_or(Ok(None)),
            None => Err(self.failed("reading was not started")),
        }
    }

    fn for_each_state(&mut self, visit: StateVisitor<'_>) -> Result<Option<u64>> {
        let height = self.head()?;
        let mut failure = None;
        let read = self.store.for_each_state(&mut |key, value| {
            visit(key, value).map_err(|error| {
                let reason = error.to_string();
                failure = Some(error);
                yuchain_storage::Error::VisitorStopped { reason }
            })
        });
        if let Some(error) = failure {
            return Err(error);
        }
        read.map_err(|error| self.failed(error))?;
        Ok(Some(height))
    }
}

impl Drop for StoreSource {
    fn drop(&mut self) {
        self.stop_reader();
    }
}

/// Blocks from a node's gateway (`StreamBlocks`), read ahead on a thread
/// of its own.
pub struct GrpcSource {
    url: String,
    runtime: Arc<tokio::runtime::Runtime>,
    blocks: Option<Receiver<Result<SourceBlock>>>,
    reader: Option<std::thread::JoinHandle<()>>,
    stop: tokio::sync::watch::Sender<bool>,
}

impl GrpcSource {
    /// A source for the node at `url` (nothing is connected yet).
    pub fn new(url: &str) -> Result<GrpcSource> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .map_err(|error| AuditError::Source {
                source_name: url.to_string(),
                reason: format!("starting the async runtime: {error}"),
            })?;
        Ok(GrpcSource {
            url: url.to_string(),
            runtime: Arc::new(runtime),
            blocks: None,
            reader: None,
            stop: tokio::sync::watch::Sender::new(false),
        })
    }

    fn failed(url: &str, reason: impl std::fmt::Display) -> AuditError {
        AuditError::Source {
            source_name: format!("the node {url}"),
            reason: reason.to_string(),
        }
    }

    async fn connect(
        url: &str,
    ) -> Result<yuchain_gateway::WalletGatewayClient<tonic::transport::Channel>> {
        let endpoint = tonic::transport::Endpoint::from_shared(url.to_string())
            .map_err(|error| GrpcSource::failed(url, error))?
            .connect_timeout(std::time::Duration::from_secs(5));
        let channel = endpoint
            .connect()
            .await
            .map_err(|error| GrpcSource::failed(url, format!("cannot connect: {error}")))?;
        Ok(yuchain_gateway::WalletGatewayClient::new(channel)
            .max_decoding_message_size(BLOCK_BYTES_MAX))
    }

    fn from_message(message: pb::StreamBlocksResponse) -> SourceBlock {
        // The inverse of [`SourceBlock::into_message`], without spans.
        SourceBlock {
            height: message.height,
            block: message.block,
            receipts: message.receipts,
            state_root: message.state_root,
            certified: message.certified,
            batch_sequences: message.batch_sequences,
            spans: None,
        }
    }
}

impl BlockSource for GrpcSource {
    fn name(&self) -> String {
        format!("the node {}", self.url)
    }

    fn head(&mut self) -> Result<u64> {
        let url = self.url.clone();
        self.runtime.block_on(async move {
            let mut client = GrpcSource::connect(&url).await?;
            let info = client
                .get_chain_info(pb::GetChainInfoRequest::default())
                .await
                .map_err(|status| GrpcSource::failed(&url, status.message()))?;
            Ok(info.into_inner().height)
        })
    }

    fn start(&mut self, from: u64) -> Result<()> {
        let (sender, receiver) = sync_channel(STREAM_AHEAD_BLOCKS);
        let url = self.url.clone();
        let runtime = Arc::clone(&self.runtime);
        let mut stop = self.stop.subscribe();
        let reader = std::thread::Builder::new()
            .name("audit-stream".into())
            .spawn(move || {
                runtime.block_on(async move {
                    let mut client = match GrpcSource::connect(&url).await {
                        Ok(client) => client,
                        Err(error) => {
                            let _ = sender.send(Err(error));
                            return;
                        }
                    };
                    let stream = client
                        .stream_blocks(pb::StreamBlocksRequest { from_height: from })
                        .await;
                    let mut stream = match stream {
                        Ok(stream) => stream.into_inner(),
                        Err(status) => {
                            let _ = sender.send(Err(GrpcSource::failed(&url, status.message())));
                            return;
                        }
                    };
                    loop {
                        let message = tokio::select! {
                            message = stream.message() => message,
                            _ = stop.changed() => return,
                        };
                        let item = match message {
                            Ok(Some(message)) => Ok(GrpcSource::from_message(message)),
                            Ok(None) => return,
                            Err(status) => Err(GrpcSource::failed(
                                &url,
                                format!("the stream ended: {}", status.message()),
                            )),
                        };
                        let failed = item.is_err();
                        // A send fails once replay stopped reading: stop too.
                        if sender.send(item).is_err() || failed {
                            return;
                        }
                    }
                });
            })
            .map_err(|error| GrpcSource::failed(&self.url, error))?;
        self.blocks = Some(receiver);
        self.reader = Some(reader);
        Ok(())
    }

    fn next_block(&mut self) -> Result<Option<SourceBlock>> {
        let Some(blocks) = &self.blocks else {
            return Err(GrpcSource::failed(&self.url, "the stream was not started"));
        };
        match blocks.recv() {
            Ok(item) => item.map(Some),
            Err(_) => Ok(None),
        }
    }

    fn for_each_state(&mut self, _visit: StateVisitor<'_>) -> Result<Option<u64>> {
        Ok(None)
    }
}

impl Drop for GrpcSource {
    fn drop(&mut self) {
        // The reader stops at the signal (a stream waiting at the head) or
        // at its next send (the queue is closed).
        self.stop.send_replace(true);
        self.blocks = None;
        if let Some(reader) = self.reader.take() {
            let _ = reader.join();
        }
    }
}
