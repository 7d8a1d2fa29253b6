//! yuchain's BFT consensus core: a sans-I/O Jolteon (DiemBFT v4, two-chain
//! HotStuff) state machine.
//!
//! The core is [`Core::step`]: it takes one [`Input`] (a tick of logical
//! time, a message's bytes, the answer to a payload request or check) and
//! returns the [`Action`]s the driver must perform, in order (persist safety
//! data, send, broadcast, schedule a tick, fetch or check a payload, commit).
//! It performs no I/O, reads no clock and draws no randomness, so the same
//! inputs always give the same actions and a simulator can drive many cores
//! from one seed.
//!
//! - [`safety`]: the data a validator must never forget and the voting rules;
//! - [`validators`]: an epoch's validator set, quorums and certificate checks;
//! - [`types`]: blocks, certificates, messages and their canonical bytes.
//!
//! It depends on `yuchain-proto` only (hashes, keys, the signature rule) and
//! orders opaque payloads: it knows nothing of payments or the ledger. See
//! consensus/README.md for the protocol, its safety argument and the driver
//! contract.
//!
//! ```
//! use yuchain_consensus::{Action, ChainTag, Config, Core, Genesis, Input, Restored};
//! use yuchain_proto::{Hash32, SigningKey};
//!
//! let key = SigningKey::for_test("validator-0");
//! let genesis = Genesis {
//!     chain: ChainTag::of("yuchain-example"),
//!     hash: Hash32([1; 32]),
//!     timestamp_ms: 0,
//!     validators: vec![key.public_key()],
//! };
//! let mut core = Core::new(key, Config::default(), genesis, Restored::default())
//!     .expect("a valid genesis");
//! // The only validator leads round 1: the first tick asks for a payload.
//! let actions = core.step(Input::Tick { now_ms: 1_000 });
//! assert!(actions.iter().any(|action| matches!(action, Action::GetPayload { .. })));
//! ```

#![cfg_attr(not(test), deny(clippy::unwrap_used))]

mod core;
pub mod error;
pub mod safety;
pub mod types;
pub mod validators;
mod wire;

pub use crate::core::{
    Action, COMMITTED_WINDOW_BLOCKS, Checkpoint, CommittedBlock, Config, Core, Durability,
    EpochEndProof, EpochRoot, Genesis, Input, Restored,
};
#[cfg(feature = "testing")]
pub use crate::core::{BrokenRule, Testing};
pub use error::{ConsensusError, Result};
pub use safety::SafetyData;
pub use types::{
    Block, BlockHash, ChainTag, Epoch, Height, Message, Proposal, QuorumCert, Round, SyncRequest,
    SyncResponse, Timeout, TimeoutCert, ValidatorId, Vote, VoteData,
};
pub use validators::{ValidatorSet, VerifyMode};
