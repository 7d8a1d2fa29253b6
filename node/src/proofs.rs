//! Account proofs against certified roots.
//!
//! A committed block's payload names an executed state (height, ledger block
//! hash, state root) several blocks below it, which its voters checked
//! against their own execution: the block's quorum certificate certifies
//! that root. The executor's ledger is ahead of it, so proofs come from a
//! [`StateView`] that follows the ledger up to the latest certified height:
//! every executed block's state changes wait here until a committed block
//! certifies a height at or above theirs, and are then applied (the view
//! checks each block's root). A wallet is answered from the view with the
//! certifying block, and checks the proof, the claim and the certificate
//! itself.
//!
//! Bounds: at most [`PENDING_BLOCKS_MAX`] blocks or [`PENDING_BYTES_MAX`]
//! bytes of changes wait; beyond that the oldest are applied without a
//! certificate (the view is then uncertified until a later claim catches
//! up), so a chain whose claims stall cannot grow the node's memory.

use std::collections::VecDeque;
use std::sync::Arc;

use anyhow::{Result, ensure};
use yuchain_ledger::ledger::StateChanges;
use yuchain_ledger::{StateView, ViewError};
use yuchain_proto::{Address, Hash32, pb};

/// The most executed blocks whose changes wait for a certificate.
pub const PENDING_BLOCKS_MAX: usize = 256;
/// The most bytes of state changes that wait for a certificate.
pub const PENDING_BYTES_MAX: usize = 128 << 20;

/// The certificate of the view's state.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Certified {
    /// The height whose state root is certified.
    pub height: u64,
    /// That root.
    pub state_root: Hash32,
    /// The committed block carrying the claim, with the certificate that
    /// made it final, in the consensus storage encoding.
    pub certified: Arc<Vec<u8>>,
}

struct Pending {
    height: u64,
    state_root: Hash32,
    changes: StateChanges,
    bytes: usize,
}

/// The state view, the changes waiting to move it, and its certificate.
pub struct Proofs {
    view: StateView,
    pending: VecDeque<Pending>,
    pending_bytes: usize,
    certified: Option<Certified>,
}

fn changes_bytes(changes: &StateChanges) -> usize {
    changes
        .iter()
        .map(|(key, value)| key.len() + value.as_ref().map_or(0, Vec::len) + 32)
        .sum()
}

impl Proofs {
    /// Proofs from `view` (the ledger's state at start-up), not yet
    /// certified.
    pub fn new(view: StateView) -> Proofs {
        Proofs {
            view,
            pending: VecDeque::new(),
            pending_bytes: 0,
            certified: None,
        }
    }

    /// The highest height executed so far (the view's, or the last pending).
    fn last_height(&self) -> u64 {
        self.pending
            .back()
            .map_or(self.view.height(), |pending| pending.height)
    }

    /// Starts again from `ledger`'s state, uncertified: after the view
    /// failed (a bug, since it replays the ledger's own changes), instead of
    /// stopping the node. A later claim at or above the ledger's height
    /// certifies it again.
    pub fn rebuild(&mut self, ledger: &yuchain_ledger::Ledger) {
        *self = Proofs::new(StateView::of(ledger));
    }

    /// The certified height, if any.
    pub fn certified_height(&self) -> Option<u64> {
        self.certified.as_ref().map(|certified| certified.height)
    }

    /// The executor applied block `height` with these changes and root.
    /// Returns whether the view lost its certificate (the bound was passed
    /// and it moved on uncertified).
    pub fn executed(
        &mut self,
        height: u64,
        state_root: Hash32,
        changes: StateChanges,
    ) -> Result<bool> {
        let expected = self.last_height().saturating_add(1);
        ensure!(
            height == expected,
            "the proof view expected block {expected} to be executed next, not {height}"
        );
        let bytes = changes_bytes(&changes);
        self.pending.push_back(Pending {
            height,
            state_root,
            changes,
            bytes,
        });
        self.pending_bytes = self.pending_bytes.saturating_add(bytes);
        let mut dropped = false;
        while self.pending.len() > PENDING_BLOCKS_MAX || self.pending_bytes > PENDING_BYTES_MAX {
            // Claims stalled: move on without a certificate.
            self.advance_one()?;
            dropped |= self.certified.take().is_some();
        }
        Ok(dropped)
    }

    fn advance_one(&mut self) -> Result<()> {
        let Some(next) = self.pending.pop_front() else {
            return Ok(());
        };
        self.pending_bytes = self.pending_bytes.saturating_sub(next.bytes);
        self.view
            .apply(next.height, &next.changes, next.state_root)
            .map_err(|error: ViewError| anyhow::anyhow!("moving the proof view: {error}"))
    }

    /// A committed block (`certified`, encoded) certified the state root of
    /// `height`. Moves the view there; a height below the view's is older
    /// than what it shows and is ignored. Returns whether the view is now
    /// certified at `height`.
    pub fn certify(
        &mut self,
        height: u64,
        state_root: Hash32,
        certified: Arc<Vec<u8>>,
    ) -> Result<bool> {
        if height < self.view.height() || height > self.last_height() {
            return Ok(false);
        }
        if height > self.view.height() {
            // The old certificate no longer describes the view once it moves.
            self.certified = None;
        }
        while self.view.height() < height {
            self.advance_one()?;
        }
        ensure!(
            self.view.root() == state_root,
            "at height {height} the proof view's root is {}, the certified one {state_root}",
            self.view.root()
        );
        self.certified = Some(Certified {
            height,
            state_root,
            certified,
        });
        Ok(true)
    }

    /// The account's proof against the certified root and its certificate,
    /// or `None` before the first certificate.
    pub fn prove(&self, address: &Address) -> Option<(Certified, pb::StateProof)> {
        let certified = self.certified.as_ref()?;
        Some((certified.clone(), self.view.prove_account(address)))
    }

    /// The merchant payment `id` (or its absence) proved against the
    /// certified root, with the block that certifies it; `None` while no
    /// certificate covers the view.
    pub fn prove_payment(&self, id: &Hash32) -> Option<(Certified, pb::StateProof)> {
        let certified = self.certified.as_ref()?;
        Some((certified.clone(), self.view.prove_payment(id)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use yuchain_ledger::AppliedBlock;
    use yuchain_ledger::testkit::{TestChain, address_of, issue, transfer};

    /// A genesis view, `count` blocks after it (an issue, then one payment
    /// each) and the bank's address.
    fn chain(count: usize) -> (Proofs, Vec<AppliedBlock>, Address) {
        let mut chain = TestChain::new(1);
        let proofs = Proofs::new(StateView::of(&chain.ledger));
        let bank = chain.operators[0].clone();
        let issuer = chain.issuer.clone();
        let funding = chain.tx(&issuer, issue(address_of(&bank), 1_000_000));
        let mut blocks = vec![chain.apply(vec![funding]).expect("issue")];
        while blocks.len() < count {
            let pay = chain.tx(&bank, transfer(address_of(&issuer), 1, ""));
            blocks.push(chain.apply(vec![pay]).expect("a block"));
        }
        (proofs, blocks, address_of(&bank))
    }

    #[test]
    fn the_view_moves_to_the_certified_height_only() {
        let (mut proofs, blocks, bank) = chain(5);
        for block in &blocks {
            proofs
                .executed(block.height, block.state_root, block.state_changes.clone())
                .expect("in order");
        }
        assert!(proofs.prove(&bank).is_none(), "nothing certified yet");
        let certificate = Arc::new(vec![1, 2, 3]);
        assert!(
            proofs
                .certify(3, blocks[2].state_root, Arc::clone(&certificate))
                .expect("the right root")
        );
        let (certified, proof) = proofs.prove(&bank).expect("certified");
        assert_eq!(certified.height, 3);
        assert_eq!(proof.root, blocks[2].state_root.0.to_vec());
        assert!(
            yuchain_ledger::verify_proof(&blocks[2].state_root, &proof)
                .expect("valid")
                .is_some()
        );
        // Older claims are ignored; claims above the executed height too.
        assert!(
            !proofs
                .certify(2, blocks[1].state_root, Arc::clone(&certificate))
                .expect("ok")
        );
        assert!(
            !proofs
                .certify(9, blocks[4].state_root, Arc::clone(&certificate))
                .expect("ok")
        );
        assert_eq!(proofs.certified_height(), Some(3));
        // A root that is not the view's is an error, not a certificate.
        assert!(proofs.certify(5, Hash32([1; 32]), certificate).is_err());
    }

    #[test]
    fn a_failed_view_is_rebuilt_from_the_ledger_and_certified_again() {
        let mut chain = TestChain::new(1);
        let mut proofs = Proofs::new(StateView::of(&chain.ledger));
        let bank = chain.operators[0].clone();
        let issuer = chain.issuer.clone();
        let funding = chain.tx(&issuer, issue(address_of(&bank), 1_000_000));
        let funded = chain.apply(vec![funding]).expect("issue");
        // Changes that are not the ledger's: the view fails its root check.
        let mut wrong = funded.state_changes.clone();
        wrong.pop();
        proofs
            .executed(1, funded.state_root, wrong)
            .expect("queued");
        let certificate = Arc::new(vec![7]);
        assert!(
            proofs
                .certify(1, funded.state_root, Arc::clone(&certificate))
                .is_err()
        );
        assert!(proofs.prove(&address_of(&bank)).is_none());
        proofs.rebuild(&chain.ledger);
        let pay = chain.tx(&bank, transfer(address_of(&issuer), 5, ""));
        let paid = chain.apply(vec![pay]).expect("a payment");
        proofs
            .executed(paid.height, paid.state_root, paid.state_changes.clone())
            .expect("the next block after the rebuild");
        assert!(
            proofs
                .certify(paid.height, paid.state_root, certificate)
                .expect("the right root")
        );
        let (certified, proof) = proofs.prove(&address_of(&bank)).expect("certified again");
        assert_eq!(certified.height, paid.height);
        assert!(
            yuchain_ledger::verify_proof(&paid.state_root, &proof)
                .expect("a valid proof")
                .is_some()
        );
    }

    #[test]
    fn blocks_out_of_order_are_refused() {
        let (mut proofs, blocks, _) = chain(3);
        assert!(
            proofs
                .executed(
                    blocks[1].height,
                    blocks[1].state_root,
                    blocks[1].state_changes.clone()
                )
                .is_err()
        );
        proofs
            .executed(
                blocks[0].height,
                blocks[0].state_root,
                blocks[0].state_changes.clone(),
            )
            .expect("the next block");
    }

    #[test]
    fn stalled_claims_move_the_view_uncertified_within_the_bound() {
        let (mut proofs, blocks, _) = chain(2);
        proofs
            .executed(
                blocks[0].height,
                blocks[0].state_root,
                blocks[0].state_changes.clone(),
            )
            .expect("executed");
        proofs
            .certify(1, blocks[0].state_root, Arc::new(Vec::new()))
            .expect("certified");
        // Fake many empty blocks with the same root as block 1's changes
        // leave: the view applies the oldest when the bound is passed.
        let root = blocks[0].state_root;
        let mut dropped = false;
        for height in 2..=(PENDING_BLOCKS_MAX as u64 + 2) {
            dropped |= proofs.executed(height, root, Vec::new()).expect("executed");
        }
        assert!(dropped, "the caller learns the certificate is gone");
        assert_eq!(proofs.pending.len(), PENDING_BLOCKS_MAX);
        assert_eq!(
            proofs.certified_height(),
            None,
            "moved without a certificate"
        );
        assert!(proofs.view.height() > 1);
    }
}
