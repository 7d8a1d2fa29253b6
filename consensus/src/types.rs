//! Consensus values and messages, their canonical bytes, hashes and signing
//! digests.
//!
//! Signatures never cover a re-encoding chosen by the verifier: each signed
//! value has one encoding (the private `wire` module), and what is signed is the
//! blake3 hash of a kind tag plus that encoding in [`Domain::Consensus`].

use std::fmt;

use yuchain_proto::{Domain, Hash32, PublicKey, Signature, SigningKey};

use crate::error::{ConsensusError, Result};
use crate::wire::{Reader, Writer};

/// The most validators in one epoch. Bounds every certificate.
pub const VALIDATORS_MAX: usize = 256;
/// The most payload bytes in one block. Payloads should be batch digests, so
/// this is generous.
pub const PAYLOAD_BYTES_MAX: usize = 256 * 1024;
/// The most blocks in one sync answer.
pub const SYNC_BLOCKS_MAX: usize = 32;
/// The most bytes in one message of any kind.
pub const MESSAGE_SIZE_BYTES_MAX: usize = 16 * 1024 * 1024;

macro_rules! counter {
    ($(#[$doc:meta])* $name:ident, $what:literal) => {
        $(#[$doc])*
        #[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
        pub struct $name(pub u64);

        impl $name {
            /// The next value; an error instead of wrapping.
            pub fn next(self) -> Result<$name> {
                self.0.checked_add(1).map($name).ok_or(ConsensusError::Overflow($what))
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}{}", $what, self.0)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}", self.0)
            }
        }
    };
}

counter!(
    /// A consensus round within an epoch. Round 0 is the epoch's root.
    Round,
    "round"
);
counter!(
    /// A block height: the root of the chain (genesis) is height 0.
    Height,
    "height"
);
counter!(
    /// An epoch: a period with one validator set.
    Epoch,
    "epoch"
);

/// A validator's index in its epoch's set.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug)]
pub struct ValidatorId(pub u16);

/// A block's hash.
pub type BlockHash = Hash32;

/// What a vote signs: a block and its parent. The parent's round lets one
/// quorum certificate prove a commit under the two-chain rule on its own.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct VoteData {
    /// The block's epoch.
    pub epoch: Epoch,
    /// The block's round.
    pub round: Round,
    /// The block.
    pub block: BlockHash,
    /// The block's height.
    pub height: Height,
    /// The block's parent.
    pub parent: BlockHash,
    /// The parent's round (0 for an epoch root).
    pub parent_round: Round,
}

impl VoteData {
    fn write(&self, writer: &mut Writer) {
        writer.u64(self.epoch.0);
        writer.u64(self.round.0);
        writer.hash(&self.block);
        writer.u64(self.height.0);
        writer.hash(&self.parent);
        writer.u64(self.parent_round.0);
    }

    fn read(reader: &mut Reader<'_>) -> Result<VoteData> {
        Ok(VoteData {
            epoch: Epoch(reader.u64()?),
            round: Round(reader.u64()?),
            block: reader.hash()?,
            height: Height(reader.u64()?),
            parent: reader.hash()?,
            parent_round: Round(reader.u64()?),
        })
    }

    /// The digest a vote signs, on `chain`.
    pub fn signing_digest(&self, chain: &ChainTag) -> Hash32 {
        let mut writer = Writer::default();
        self.write(&mut writer);
        Domain::Consensus.hash_parts(&[b"vote", &chain.0.0, &writer.bytes])
    }

    /// The block that a quorum certificate over this data proves committed,
    /// under the two-chain rule: the parent, when the block's round directly
    /// follows it (Jolteon §4, "two-chain commit").
    pub fn commits(&self) -> Option<BlockHash> {
        (self.round.0 > 0 && self.parent_round.0.checked_add(1) == Some(self.round.0))
            .then_some(self.parent)
    }
}

/// A quorum certificate: 2f + 1 distinct validators signed the same
/// [`VoteData`]. The signers are strictly increasing indices into the epoch's
/// set, so a repeated signer is a decoding-level error. An epoch's root has a
/// certificate with no signatures at round 0.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct QuorumCert {
    /// What was signed.
    pub vote: VoteData,
    /// The signers and their signatures, by increasing index.
    pub signatures: Vec<(ValidatorId, Signature)>,
}

impl QuorumCert {
    /// The certificate of an epoch's root block.
    pub fn root(epoch: Epoch, block: BlockHash, height: Height) -> QuorumCert {
        QuorumCert {
            vote: VoteData {
                epoch,
                round: Round(0),
                block,
                height,
                parent: block,
                parent_round: Round(0),
            },
            signatures: Vec::new(),
        }
    }

    /// The certified round.
    pub fn round(&self) -> Round {
        self.vote.round
    }

    pub(crate) fn write(&self, writer: &mut Writer) {
        self.vote.write(writer);
        writer.len(self.signatures.len());
        for (signer, signature) in &self.signatures {
            writer.u16(signer.0);
            writer.signature(signature);
        }
    }

    pub(crate) fn read(reader: &mut Reader<'_>) -> Result<QuorumCert> {
        let vote = VoteData::read(reader)?;
        let count = reader.len(VALIDATORS_MAX, "too many signatures")?;
        let mut signatures = Vec::with_capacity(count);
        for _ in 0..count {
            signatures.push((ValidatorId(reader.u16()?), reader.signature()?));
        }
        Ok(QuorumCert { vote, signatures })
    }

    /// A digest of the whole certificate (for the verified-certificate cache).
    pub fn digest(&self) -> Hash32 {
        let mut writer = Writer::default();
        self.write(&mut writer);
        Domain::Consensus.hash_parts(&[b"quorum certificate", &writer.bytes])
    }

    /// The length of its encoding, computed without encoding (memory
    /// bounds count it).
    pub fn encoded_len(&self) -> usize {
        const VOTE_DATA: usize = 8 + 8 + 32 + 8 + 32 + 8;
        VOTE_DATA + 4 + self.signatures.len().saturating_mul(2 + 64)
    }
}

/// One validator's share of a timeout certificate.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct TimeoutEntry {
    /// The signer.
    pub signer: ValidatorId,
    /// The round of the signer's highest quorum certificate.
    pub high_qc_round: Round,
    /// Its signature over (epoch, round, high_qc_round).
    pub signature: Signature,
}

/// A timeout certificate: 2f + 1 distinct validators gave up on a round, each
/// saying how high a quorum certificate it had (Jolteon's TC), and the
/// highest of those certificates itself (as Aptos's two-chain timeout
/// certificate carries it), so no signer's claim is taken on trust: the
/// highest claim must equal the carried certificate's round, and a
/// certificate cannot be forged.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct TimeoutCert {
    /// The epoch.
    pub epoch: Epoch,
    /// The round given up.
    pub round: Round,
    /// The signers by increasing index.
    pub entries: Vec<TimeoutEntry>,
    /// The highest quorum certificate among the signers' (its round is the
    /// highest `high_qc_round` of the entries).
    pub high_qc: QuorumCert,
}

impl TimeoutCert {
    /// The highest quorum-certificate round of the signers, backed by the
    /// certificate the TC carries: a block proposed after this certificate
    /// must extend at least this high.
    pub fn high_qc_round(&self) -> Round {
        self.high_qc.round()
    }

    /// The highest round any entry claims (equal to [`Self::high_qc_round`]
    /// in a valid certificate).
    pub fn highest_claim(&self) -> Round {
        self.entries
            .iter()
            .map(|entry| entry.high_qc_round)
            .max()
            .unwrap_or_default()
    }

    /// A digest of the whole certificate (for the verified-certificate cache).
    pub fn digest(&self) -> Hash32 {
        let mut writer = Writer::default();
        self.write(&mut writer);
        Domain::Consensus.hash_parts(&[b"timeout certificate", &writer.bytes])
    }

    pub(crate) fn write(&self, writer: &mut Writer) {
        writer.u64(self.epoch.0);
        writer.u64(self.round.0);
        writer.len(self.entries.len());
        for entry in &self.entries {
            writer.u16(entry.signer.0);
            writer.u64(entry.high_qc_round.0);
            writer.signature(&entry.signature);
        }
        self.high_qc.write(writer);
    }

    pub(crate) fn read(reader: &mut Reader<'_>) -> Result<TimeoutCert> {
        let epoch = Epoch(reader.u64()?);
        let round = Round(reader.u64()?);
        let count = reader.len(VALIDATORS_MAX, "too many timeout signatures")?;
        let mut entries = Vec::with_capacity(count);
        for _ in 0..count {
            entries.push(TimeoutEntry {
                signer: ValidatorId(reader.u16()?),
                high_qc_round: Round(reader.u64()?),
                signature: reader.signature()?,
            });
        }
        let high_qc = QuorumCert::read(reader)?;
        Ok(TimeoutCert {
            epoch,
            round,
            entries,
            high_qc,
        })
    }
}

/// The digest a timeout signs: giving up on `round` of `epoch` of `chain`
/// while holding a certificate of `high_qc_round`.
pub fn timeout_digest(
    chain: &ChainTag,
    epoch: Epoch,
    round: Round,
    high_qc_round: Round,
) -> Hash32 {
    let mut writer = Writer::default();
    writer.u64(epoch.0);
    writer.u64(round.0);
    writer.u64(high_qc_round.0);
    Domain::Consensus.hash_parts(&[b"timeout", &chain.0.0, &writer.bytes])
}

/// A block: an opaque payload ordered after its parent, with the quorum
/// certificate of that parent.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Block {
    /// The epoch.
    pub epoch: Epoch,
    /// The round it was proposed in.
    pub round: Round,
    /// Its height: the parent's plus one.
    pub height: Height,
    /// The parent's hash.
    pub parent: BlockHash,
    /// The certificate of the parent (the parent's epoch root certificate in
    /// an epoch's first blocks).
    pub justify: QuorumCert,
    /// The leader's clock when proposing, in milliseconds since the Unix
    /// epoch: after the parent's, close to every voter's clock.
    pub timestamp_ms: u64,
    /// The leader (the round's round-robin leader).
    pub proposer: ValidatorId,
    /// The payload, opaque to consensus (the ledger checks it).
    pub payload: Vec<u8>,
    /// When set, committing this block ends the epoch and this set validates
    /// the next one.
    pub next_validators: Option<Vec<PublicKey>>,
}

impl Block {
    pub(crate) fn write(&self, writer: &mut Writer) {
        writer.u64(self.epoch.0);
        writer.u64(self.round.0);
        writer.u64(self.height.0);
        writer.hash(&self.parent);
        self.justify.write(writer);
        writer.u64(self.timestamp_ms);
        writer.u16(self.proposer.0);
        writer.bytes(&self.payload);
        match &self.next_validators {
            None => writer.u8(0),
            Some(keys) => {
                writer.u8(1);
                writer.len(keys.len());
                for key in keys {
                    writer.key(key);
                }
            }
        }
    }

    pub(crate) fn read(reader: &mut Reader<'_>) -> Result<Block> {
        let epoch = Epoch(reader.u64()?);
        let round = Round(reader.u64()?);
        let height = Height(reader.u64()?);
        let parent = reader.hash()?;
        let justify = QuorumCert::read(reader)?;
        let timestamp_ms = reader.u64()?;
        let proposer = ValidatorId(reader.u16()?);
        let payload = reader.bytes(PAYLOAD_BYTES_MAX, "payload too large")?;
        let next_validators = if reader.present()? {
            let count = reader.len(VALIDATORS_MAX, "too many validators")?;
            let mut keys = Vec::with_capacity(count);
            for _ in 0..count {
                keys.push(reader.key()?);
            }
            Some(keys)
        } else {
            None
        };
        Ok(Block {
            epoch,
            round,
            height,
            parent,
            justify,
            timestamp_ms,
            proposer,
            payload,
            next_validators,
        })
    }

    /// The length of its encoding, computed without encoding (memory
    /// bounds count it).
    pub fn encoded_len(&self) -> usize {
        let validators = self
            .next_validators
            .as_ref()
            .map_or(0, |keys| 4 + keys.len().saturating_mul(32));
        (8 + 8 + 8 + 32 + 8 + 2 + 4 + 1)
            + self.justify.encoded_len()
            + self.payload.len()
            + validators
    }

    /// The block's hash: over every field, the parent's certificate included.
    pub fn hash(&self) -> BlockHash {
        let mut writer = Writer::default();
        self.write(&mut writer);
        Domain::Consensus.hash_parts(&[b"block", &writer.bytes])
    }
}

/// The digest a leader signs to propose a block on `chain`.
pub fn proposal_digest(chain: &ChainTag, block: &BlockHash) -> Hash32 {
    Domain::Consensus.hash_parts(&[b"proposal", &chain.0.0, &block.0])
}

/// The chain every consensus signature names, so that a signature (and a
/// certificate) made for one chain is worthless on another, even where the
/// two share validator keys: a wallet checking one certificate sees no
/// ancestry, only what was signed. Derived from the chain id.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct ChainTag(pub Hash32);

impl ChainTag {
    /// The tag of the chain named `chain_id` (the genesis file's
    /// `[ledger] chain_id`, which every transaction names too).
    pub fn of(chain_id: &str) -> ChainTag {
        ChainTag(Domain::Consensus.hash_parts(&[b"chain", chain_id.as_bytes()]))
    }

    /// The tag of the chain id tests and simulations use (`yuchain-test`,
    /// the ledger test kit's).
    pub fn for_test() -> ChainTag {
        ChainTag::of("yuchain-test")
    }
}

/// A leader's proposal, with the timeout certificate that let it skip rounds.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Proposal {
    /// The block.
    pub block: Block,
    /// The certificate of the previous round, when it timed out.
    pub last_tc: Option<TimeoutCert>,
    /// The leader's signature over [`proposal_digest`].
    pub signature: Signature,
}

/// One validator's vote, sent to the next round's leader.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Vote {
    /// What it votes for.
    pub data: VoteData,
    /// The voter.
    pub signer: ValidatorId,
    /// Its signature over [`VoteData::signing_digest`].
    pub signature: Signature,
}

impl Vote {
    /// A signed vote on `chain`.
    pub fn sign(key: &SigningKey, chain: &ChainTag, data: VoteData, signer: ValidatorId) -> Vote {
        Vote {
            data,
            signer,
            signature: key.sign(&data.signing_digest(chain).0),
        }
    }
}

/// A validator gives up on a round (broadcast).
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Timeout {
    /// The epoch.
    pub epoch: Epoch,
    /// The round given up.
    pub round: Round,
    /// The sender's highest quorum certificate.
    pub high_qc: QuorumCert,
    /// The certificate by which the sender entered `round`, if a timeout.
    pub last_tc: Option<TimeoutCert>,
    /// The sender.
    pub signer: ValidatorId,
    /// Its signature over [`timeout_digest`].
    pub signature: Signature,
}

impl Timeout {
    /// A signed timeout on `chain`.
    pub fn sign(
        key: &SigningKey,
        chain: &ChainTag,
        epoch: Epoch,
        round: Round,
        high_qc: QuorumCert,
        last_tc: Option<TimeoutCert>,
        signer: ValidatorId,
    ) -> Timeout {
        let signature = key.sign(&timeout_digest(chain, epoch, round, high_qc.round()).0);
        Timeout {
            epoch,
            round,
            high_qc,
            last_tc,
            signer,
            signature,
        }
    }
}

/// Asks a peer for the blocks on its chain from a height up.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct SyncRequest {
    /// The asker's epoch.
    pub epoch: Epoch,
    /// The first height wanted (height mode).
    pub from_height: Height,
    /// A particular block wanted, with whatever ancestors the peer has
    /// (hash mode): when a certificate names a block this node lacks.
    pub block: Option<BlockHash>,
}

/// Certified blocks answering a [`SyncRequest`]: a parent-linked chain, each
/// block certified by the next one's `justify`, the last by `qc`.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct SyncResponse {
    /// The blocks, by increasing height.
    pub blocks: Vec<Block>,
    /// The certificate of the last block.
    pub qc: QuorumCert,
}

/// Every message validators exchange.
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum Message {
    /// A leader's block.
    Proposal(Proposal),
    /// A vote, to the next leader.
    Vote(Vote),
    /// A timeout, to everyone.
    Timeout(Timeout),
    /// A request for certified blocks.
    SyncRequest(SyncRequest),
    /// The blocks.
    SyncResponse(SyncResponse),
    /// The certificates that moved the sender past a round the receiver is
    /// still in (sent to a peer whose timeout arrived for a past round).
    SyncInfo(SyncInfo),
}

/// A node's highest certificates, for a peer that fell behind in rounds:
/// every field is a certificate the receiver verifies itself.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct SyncInfo {
    /// The sender's highest quorum certificate.
    pub high_qc: QuorumCert,
    /// The sender's highest timeout certificate, if any.
    pub high_tc: Option<TimeoutCert>,
}

/// The first byte of every message: the encoding's version.
const WIRE_VERSION: u8 = 1;

fn write_tc(writer: &mut Writer, tc: &Option<TimeoutCert>) {
    match tc {
        None => writer.u8(0),
        Some(tc) => {
            writer.u8(1);
            tc.write(writer);
        }
    }
}

fn read_tc(reader: &mut Reader<'_>) -> Result<Option<TimeoutCert>> {
    if reader.present()? {
        Ok(Some(TimeoutCert::read(reader)?))
    } else {
        Ok(None)
    }
}

impl Message {
    /// The message's bytes.
    pub fn encode(&self) -> Vec<u8> {
        let mut writer = Writer::default();
        writer.u8(WIRE_VERSION);
        match self {
            Message::Proposal(proposal) => {
                writer.u8(1);
                proposal.block.write(&mut writer);
                write_tc(&mut writer, &proposal.last_tc);
                writer.signature(&proposal.signature);
            }
            Message::Vote(vote) => {
                writer.u8(2);
                vote.data.write(&mut writer);
                writer.u16(vote.signer.0);
                writer.signature(&vote.signature);
            }
            Message::Timeout(timeout) => {
                writer.u8(3);
                writer.u64(timeout.epoch.0);
                writer.u64(timeout.round.0);
                timeout.high_qc.write(&mut writer);
                write_tc(&mut writer, &timeout.last_tc);
                writer.u16(timeout.signer.0);
                writer.signature(&timeout.signature);
            }
            Message::SyncRequest(request) => {
                writer.u8(4);
                writer.u64(request.epoch.0);
                writer.u64(request.from_height.0);
                match &request.block {
                    None => writer.u8(0),
                    Some(hash) => {
                        writer.u8(1);
                        writer.hash(hash);
                    }
                }
            }
            Message::SyncInfo(info) => {
                writer.u8(6);
                info.high_qc.write(&mut writer);
                write_tc(&mut writer, &info.high_tc);
            }
            Message::SyncResponse(response) => {
                writer.u8(5);
                writer.len(response.blocks.len());
                for block in &response.blocks {
                    block.write(&mut writer);
                }
                response.qc.write(&mut writer);
            }
        }
        writer.bytes
    }

    /// Decodes a message, refusing oversized input, unknown kinds and
    /// trailing bytes.
    pub fn decode(bytes: &[u8]) -> Result<Message> {
        if bytes.len() > MESSAGE_SIZE_BYTES_MAX {
            return Err(ConsensusError::MessageTooLarge {
                size: bytes.len(),
                limit: MESSAGE_SIZE_BYTES_MAX,
            });
        }
        let mut reader = Reader::new(bytes);
        if reader.u8()? != WIRE_VERSION {
            return Err(ConsensusError::Malformed("unknown wire version"));
        }
        let message = match reader.u8()? {
            1 => Message::Proposal(Proposal {
                block: Block::read(&mut reader)?,
                last_tc: read_tc(&mut reader)?,
                signature: reader.signature()?,
            }),
            2 => Message::Vote(Vote {
                data: VoteData::read(&mut reader)?,
                signer: ValidatorId(reader.u16()?),
                signature: reader.signature()?,
            }),
            3 => Message::Timeout(Timeout {
                epoch: Epoch(reader.u64()?),
                round: Round(reader.u64()?),
                high_qc: QuorumCert::read(&mut reader)?,
                last_tc: read_tc(&mut reader)?,
                signer: ValidatorId(reader.u16()?),
                signature: reader.signature()?,
            }),
            4 => Message::SyncRequest(SyncRequest {
                epoch: Epoch(reader.u64()?),
                from_height: Height(reader.u64()?),
                block: if reader.present()? {
                    Some(reader.hash()?)
                } else {
                    None
                },
            }),
            5 => {
                let count = reader.len(SYNC_BLOCKS_MAX, "too many blocks")?;
                let mut blocks = Vec::with_capacity(count);
                for _ in 0..count {
                    blocks.push(Block::read(&mut reader)?);
                }
                Message::SyncResponse(SyncResponse {
                    blocks,
                    qc: QuorumCert::read(&mut reader)?,
                })
            }
            6 => Message::SyncInfo(SyncInfo {
                high_qc: QuorumCert::read(&mut reader)?,
                high_tc: read_tc(&mut reader)?,
            }),
            _ => return Err(ConsensusError::Malformed("unknown message kind")),
        };
        reader.finish()?;
        Ok(message)
    }
}

/// The first byte of a stored block or committed block: the storage
/// encoding's version.
const STORAGE_VERSION: u8 = 1;

/// A reader of a stored value: bounded in size, of this storage version.
fn storage_reader(bytes: &[u8]) -> Result<Reader<'_>> {
    if bytes.len() > MESSAGE_SIZE_BYTES_MAX {
        return Err(ConsensusError::MessageTooLarge {
            size: bytes.len(),
            limit: MESSAGE_SIZE_BYTES_MAX,
        });
    }
    let mut reader = Reader::new(bytes);
    if reader.u8()? != STORAGE_VERSION {
        return Err(ConsensusError::Malformed("unknown storage version"));
    }
    Ok(reader)
}

impl Block {
    /// The block's bytes for the driver's store (uncommitted blocks kept
    /// across a restart).
    pub fn encode(&self) -> Vec<u8> {
        let mut writer = Writer::default();
        writer.u8(STORAGE_VERSION);
        self.write(&mut writer);
        writer.bytes
    }

    /// Decodes [`Block::encode`]'s bytes, refusing oversized input and
    /// trailing bytes.
    pub fn decode(bytes: &[u8]) -> Result<Block> {
        let mut reader = storage_reader(bytes)?;
        let block = Block::read(&mut reader)?;
        reader.finish()?;
        Ok(block)
    }
}

impl crate::CommittedBlock {
    /// The committed block's bytes for the driver's store: the block, the
    /// certificate that made it final, and an epoch-ending proof if any.
    pub fn encode(&self) -> Vec<u8> {
        let mut writer = Writer::default();
        writer.u8(STORAGE_VERSION);
        self.block.write(&mut writer);
        self.commit_qc.write(&mut writer);
        match &self.epoch_end {
            None => writer.u8(0),
            Some(proof) => {
                writer.u8(1);
                writer.len(proof.blocks.len());
                for block in &proof.blocks {
                    block.write(&mut writer);
                }
                proof.qc.write(&mut writer);
            }
        }
        writer.bytes
    }

    /// Decodes [`crate::CommittedBlock::encode`]'s bytes. Nothing is
    /// verified: the store is the node's own (a syncing node verifies what
    /// it receives through the core).
    pub fn decode(bytes: &[u8]) -> Result<crate::CommittedBlock> {
        let mut reader = storage_reader(bytes)?;
        let block = Block::read(&mut reader)?;
        let commit_qc = QuorumCert::read(&mut reader)?;
        let epoch_end = if reader.present()? {
            let count = reader.len(SYNC_BLOCKS_MAX, "too many blocks")?;
            let mut blocks = Vec::with_capacity(count);
            for _ in 0..count {
                blocks.push(Block::read(&mut reader)?);
            }
            Some(crate::EpochEndProof {
                blocks,
                qc: QuorumCert::read(&mut reader)?,
            })
        } else {
            None
        };
        reader.finish()?;
        Ok(crate::CommittedBlock {
            block,
            commit_qc,
            epoch_end,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stored_blocks_and_committed_blocks_round_trip() {
        let block = sample_block();
        assert_eq!(Block::decode(&block.encode()).expect("decodes"), block);
        let committed = crate::CommittedBlock {
            commit_qc: block.justify.clone(),
            epoch_end: Some(crate::EpochEndProof {
                blocks: vec![block.clone()],
                qc: block.justify.clone(),
            }),
            block,
        };
        let bytes = committed.encode();
        assert_eq!(
            crate::CommittedBlock::decode(&bytes).expect("decodes"),
            committed
        );
        let mut longer = bytes.clone();
        longer.push(0);
        assert!(crate::CommittedBlock::decode(&longer).is_err());
        assert!(crate::CommittedBlock::decode(&bytes[..bytes.len() - 1]).is_err());
    }

    pub(crate) fn sample_block() -> Block {
        let key = SigningKey::for_test("v0");
        let parent = Hash32([7; 32]);
        let data = VoteData {
            epoch: Epoch(0),
            round: Round(4),
            block: parent,
            height: Height(3),
            parent: Hash32([6; 32]),
            parent_round: Round(3),
        };
        Block {
            epoch: Epoch(0),
            round: Round(5),
            height: Height(4),
            parent,
            justify: QuorumCert {
                vote: data,
                signatures: vec![(
                    ValidatorId(0),
                    key.sign(&data.signing_digest(&ChainTag::for_test()).0),
                )],
            },
            timestamp_ms: 1_000,
            proposer: ValidatorId(1),
            payload: b"payload".to_vec(),
            next_validators: Some(vec![key.public_key()]),
        }
    }

    #[test]
    fn every_message_kind_round_trips_exactly() {
        let key = SigningKey::for_test("v0");
        let block = sample_block();
        let tc = TimeoutCert {
            epoch: Epoch(0),
            round: Round(4),
            entries: vec![TimeoutEntry {
                signer: ValidatorId(2),
                high_qc_round: Round(3),
                signature: key.sign(b"x"),
            }],
            high_qc: block.justify.clone(),
        };
        let messages = vec![
            Message::Proposal(Proposal {
                block: block.clone(),
                last_tc: Some(tc.clone()),
                signature: key.sign(b"p"),
            }),
            Message::Vote(Vote::sign(
                &key,
                &ChainTag::for_test(),
                block.justify.vote,
                ValidatorId(3),
            )),
            Message::Timeout(Timeout::sign(
                &key,
                &ChainTag::for_test(),
                Epoch(0),
                Round(5),
                block.justify.clone(),
                Some(tc.clone()),
                ValidatorId(0),
            )),
            Message::SyncRequest(SyncRequest {
                epoch: Epoch(2),
                from_height: Height(9),
                block: None,
            }),
            Message::SyncRequest(SyncRequest {
                epoch: Epoch(2),
                from_height: Height(9),
                block: Some(block.hash()),
            }),
            Message::SyncResponse(SyncResponse {
                blocks: vec![block.clone(), block.clone()],
                qc: block.justify.clone(),
            }),
            Message::SyncInfo(SyncInfo {
                high_qc: block.justify.clone(),
                high_tc: Some(tc.clone()),
            }),
        ];
        for message in messages {
            let bytes = message.encode();
            assert_eq!(Message::decode(&bytes).expect("decodes"), message);
            // Every strict prefix is rejected, never a panic.
            for cut in 0..bytes.len() {
                assert!(Message::decode(&bytes[..cut]).is_err());
            }
        }
    }

    #[test]
    fn oversized_and_garbage_input_is_rejected() {
        let huge = vec![1u8; MESSAGE_SIZE_BYTES_MAX + 1];
        assert!(matches!(
            Message::decode(&huge),
            Err(ConsensusError::MessageTooLarge { .. })
        ));
        assert!(Message::decode(&[]).is_err());
        assert!(Message::decode(&[1, 99]).is_err());
        assert!(Message::decode(&[2, 1]).is_err());
        // A list length of u32::MAX is refused before allocating.
        let mut bytes = vec![1, 5];
        bytes.extend_from_slice(&u32::MAX.to_le_bytes());
        assert!(Message::decode(&bytes).is_err());
    }

    #[test]
    fn encoded_lengths_are_exact() {
        let mut block = sample_block();
        let mut writer = Writer::default();
        block.write(&mut writer);
        assert_eq!(block.encoded_len(), writer.bytes.len());
        block.next_validators = None;
        block.payload = vec![1; 1000];
        let mut writer = Writer::default();
        block.write(&mut writer);
        assert_eq!(block.encoded_len(), writer.bytes.len());
    }

    #[test]
    fn block_hash_covers_every_field() {
        let block = sample_block();
        let mut changed = block.clone();
        changed.timestamp_ms += 1;
        assert_ne!(block.hash(), changed.hash());
        let mut changed = block.clone();
        changed.justify.signatures.clear();
        assert_ne!(block.hash(), changed.hash());
        let mut changed = block.clone();
        changed.next_validators = None;
        assert_ne!(block.hash(), changed.hash());
    }

    #[test]
    fn two_chain_commit_needs_consecutive_rounds() {
        let mut data = sample_block().justify.vote;
        assert_eq!(data.commits(), Some(data.parent));
        data.parent_round = Round(2);
        assert_eq!(data.commits(), None);
        let root = QuorumCert::root(Epoch(0), Hash32::ZERO, Height(0));
        assert_eq!(root.vote.commits(), None);
    }
}
