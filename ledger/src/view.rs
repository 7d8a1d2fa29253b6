//! A copy of the state at one height, kept behind the executing ledger, so
//! that accounts can be proved against a root the validators certified.
//!
//! Execution runs ahead of certification: a block certifies the state root
//! of a height several blocks below the one it executes after (see the node's
//! executed-state claims), and the ledger keeps only its latest tree. A
//! [`StateView`] is the tree and the accounts at an older height; the node
//! moves it forward with each block's [`StateChanges`] (checking the root
//! each time), up to the height the latest certificate names, and answers
//! account queries from it. Each block costs its changes only (the tree is
//! updated in place).
//!
//! It holds the whole tree and every account's and merchant payment's
//! encoded record, so it costs about as much memory as the ledger's own tree,
//! accounts and payments. The chain totals are in its tree (they are part of
//! the root) but their value is not kept.

use std::collections::HashMap;

use thiserror::Error;
use yuchain_proto::{Address, Hash32, pb};

use crate::ledger::{Ledger, StateChanges};
use crate::state::{StateKey, encode};
use crate::tree::StateTree;

/// Moving a view forward failed; the view is unchanged.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum ViewError {
    /// The changes are for another height than the view's next.
    #[error("the view is at height {at}; changes for height {got} cannot be applied")]
    WrongHeight {
        /// The view's height.
        at: u64,
        /// The changes' height.
        got: u64,
    },
    /// A change's key is not a state key.
    #[error("a state change has an unknown key")]
    UnknownKey,
    /// An earlier apply failed its root check: the view no longer matches
    /// any height and must be made again from a ledger.
    #[error("the view failed a root check and must be rebuilt")]
    Poisoned,
    /// After the changes the root is not the expected one: the changes are
    /// not those the ledger made. The view is poisoned.
    #[error("after height {height} the view's root is {computed}, expected {expected}")]
    RootMismatch {
        /// The height.
        height: u64,
        /// The root the ledger computed.
        expected: Hash32,
        /// The view's root.
        computed: Hash32,
    },
}

/// The state tree and accounts at one height.
#[derive(Clone)]
pub struct StateView {
    height: u64,
    tree: StateTree,
    accounts: HashMap<Address, Vec<u8>>,
    payments: HashMap<Hash32, Vec<u8>>,
    poisoned: bool,
}

impl StateView {
    /// The ledger's state now.
    pub fn of(ledger: &Ledger) -> StateView {
        StateView {
            height: ledger.height(),
            tree: ledger.tree.clone(),
            accounts: ledger
                .accounts
                .iter()
                .map(|(address, account)| (*address, encode(&account.to_proto())))
                .collect(),
            payments: ledger
                .payments
                .iter()
                .map(|(id, payment)| (*id, encode(&payment.to_proto())))
                .collect(),
            poisoned: false,
        }
    }

    /// The height whose state this is.
    pub fn height(&self) -> u64 {
        self.height
    }

    /// The state root at that height.
    pub fn root(&self) -> Hash32 {
        self.tree.root()
    }

    /// Applies the changes of block `height` (the view's next), which must
    /// give `expected_root`. A wrong height or key changes nothing; a wrong
    /// root leaves the view poisoned (the tree is updated in place, not
    /// copied, so a block costs only its changes).
    pub fn apply(
        &mut self,
        height: u64,
        changes: &StateChanges,
        expected_root: Hash32,
    ) -> Result<(), ViewError> {
        if self.poisoned {
            return Err(ViewError::Poisoned);
        }
        if Some(height) != self.height.checked_add(1) {
            return Err(ViewError::WrongHeight {
                at: self.height,
                got: height,
            });
        }
        let keyed = changes
            .iter()
            .map(|(key, value)| {
                StateKey::from_bytes(key)
                    .map(|key| (key, value.clone()))
                    .ok_or(ViewError::UnknownKey)
            })
            .collect::<Result<Vec<_>, _>>()?;
        self.tree.update(&keyed);
        if self.tree.root() != expected_root {
            self.poisoned = true;
            return Err(ViewError::RootMismatch {
                height,
                expected: expected_root,
                computed: self.tree.root(),
            });
        }
        for (key, value) in keyed {
            match (key, value) {
                (StateKey::Account(address), Some(bytes)) => {
                    self.accounts.insert(address, bytes);
                }
                (StateKey::Account(address), None) => {
                    self.accounts.remove(&address);
                }
                (StateKey::Payment(id), Some(bytes)) => {
                    self.payments.insert(id, bytes);
                }
                (StateKey::Payment(id), None) => {
                    self.payments.remove(&id);
                }
                (StateKey::Chain, _) => {}
            }
        }
        self.height = height;
        Ok(())
    }

    /// The account's encoded record (`None`: no such account) and the proof
    /// of it, or of its absence, against [`StateView::root`].
    pub fn prove_account(&self, address: &Address) -> pb::StateProof {
        let value = self.accounts.get(address).cloned();
        self.tree.prove(&StateKey::Account(*address), value)
    }

    /// The merchant payment's encoded record (`None`: no payment has this
    /// id) and the proof of it, or of its absence, against
    /// [`StateView::root`].
    pub fn prove_payment(&self, id: &Hash32) -> pb::StateProof {
        let value = self.payments.get(id).cloned();
        self.tree.prove(&StateKey::Payment(*id), value)
    }
}

impl std::fmt::Debug for StateView {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("StateView")
            .field("height", &self.height)
            .field("root", &self.root())
            .field("accounts", &self.accounts.len())
            .field("payments", &self.payments.len())
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testkit::{TestChain, address_of, issue, register_personal, transfer};
    use crate::verify_proof;
    use yuchain_proto::SigningKey;
    use yuchain_proto::pb::KycTier;

    /// A chain with a funded bank and two wallets, and the blocks after
    /// genesis that made them.
    fn setup() -> (TestChain, SigningKey, SigningKey, Vec<crate::AppliedBlock>) {
        let mut chain = TestChain::new(1);
        let bank = chain.operators[0].clone();
        let issuer = chain.issuer.clone();
        let alice = SigningKey::for_test("alice");
        let bob = SigningKey::for_test("bob");
        let txs = vec![
            chain.tx(&issuer, issue(address_of(&bank), 1_000_000)),
            chain.tx(&bank, register_personal(&alice, KycTier::Class2)),
            chain.tx(&bank, register_personal(&bob, KycTier::Class2)),
            chain.tx(&bank, transfer(address_of(&alice), 10_000, "top-up")),
        ];
        let applied = chain.apply(txs).expect("setup block");
        (chain, alice, bob, vec![applied])
    }

    #[test]
    fn a_view_follows_the_ledger_block_by_block_and_proves_against_old_roots() {
        // The test chain is deterministic: another one's genesis is this
        // one's.
        let mut view = StateView::of(&TestChain::new(1).ledger);
        let (mut chain, alice, bob, mut blocks) = setup();
        assert_eq!(view.height(), 0);
        for _ in 0..3 {
            let pay = chain.tx(&alice, transfer(address_of(&bob), 1_000, ""));
            blocks.push(chain.apply(vec![pay]).expect("a payment block"));
        }
        // Behind the ledger, the view proves the state of its own height:
        // bob does not exist yet at genesis.
        let old = view.prove_account(&address_of(&bob));
        assert_eq!(verify_proof(&view.root(), &old), Ok(None));
        for block in &blocks {
            view.apply(block.height, &block.state_changes, block.state_root)
                .expect("the ledger's own changes");
        }
        assert_eq!(view.height(), chain.ledger.height());
        assert_eq!(view.root(), chain.ledger.state_root());
        let proof = view.prove_account(&address_of(&bob));
        let value = verify_proof(&chain.ledger.state_root(), &proof)
            .expect("a valid proof")
            .expect("bob exists");
        let account =
            <pb::Account as prost::Message>::decode(value.as_slice()).expect("an account record");
        assert_eq!(account.balance, 3_000);
        assert_eq!(
            proof,
            chain.ledger.prove(&StateKey::Account(address_of(&bob)))
        );
    }

    #[test]
    fn a_view_proves_merchant_payments_as_they_were_at_its_height() {
        let (mut chain, alice, _, blocks) = setup();
        let bank = chain.operators[0].clone();
        let shop = SigningKey::for_test("shop");
        let register = chain.tx(
            &bank,
            crate::testkit::register_merchant(&shop, pb::MerchantCategory::Catering),
        );
        chain.apply(vec![register]).expect("the shop registers");
        let mut view = StateView::of(&chain.ledger);
        let pay = chain.tx(
            &alice,
            crate::testkit::merchant_payment(address_of(&shop), 2_500, "order-7"),
        );
        let payment_id = yuchain_proto::tx::tx_id(&pay.body, &pay.signature);
        let paid = chain.apply(vec![pay]).expect("alice pays the shop");
        // Before the payment's block the view proves it absent.
        let absent = view.prove_payment(&payment_id);
        assert_eq!(verify_proof(&view.root(), &absent), Ok(None));
        view.apply(paid.height, &paid.state_changes, paid.state_root)
            .expect("the ledger's own changes");
        let refund = chain.tx(&shop, crate::testkit::refund(payment_id, 1_000));
        let refunded = chain.apply(vec![refund]).expect("a partial refund");
        // One block behind the ledger: the record as it was, unrefunded.
        let record = |view: &StateView| {
            let proof = view.prove_payment(&payment_id);
            let value = verify_proof(&view.root(), &proof)
                .expect("a valid proof")
                .expect("the payment exists");
            <pb::PaymentRecord as prost::Message>::decode(value.as_slice()).expect("a record")
        };
        let before = record(&view);
        assert_eq!((before.amount, before.refunded), (2_500, 0));
        assert_eq!(before.order_id, "order-7");
        assert_eq!(before.payer, address_of(&alice).0.to_vec());
        view.apply(
            refunded.height,
            &refunded.state_changes,
            refunded.state_root,
        )
        .expect("the refund's changes");
        assert_eq!(record(&view).refunded, 1_000);
        assert_eq!(
            view.prove_payment(&payment_id),
            chain.ledger.prove(&StateKey::Payment(payment_id))
        );
        drop(blocks);
    }

    #[test]
    fn a_wrong_root_poisons_the_view() {
        let genesis = TestChain::new(1);
        let mut view = StateView::of(&genesis.ledger);
        let (_, _, _, blocks) = setup();
        let block = &blocks[0];
        let wrong_root = view.apply(block.height, &block.state_changes, Hash32([7; 32]));
        assert!(matches!(wrong_root, Err(ViewError::RootMismatch { .. })));
        assert_eq!(
            view.apply(block.height, &block.state_changes, block.state_root),
            Err(ViewError::Poisoned)
        );
    }

    #[test]
    fn wrong_heights_or_keys_change_nothing() {
        let genesis = TestChain::new(1);
        let mut view = StateView::of(&genesis.ledger);
        let before = (view.height(), view.root());
        let (_, alice, _, blocks) = setup();
        let block = &blocks[0];
        let skipped = view.apply(
            block.height.saturating_add(1),
            &block.state_changes,
            block.state_root,
        );
        assert!(matches!(skipped, Err(ViewError::WrongHeight { .. })));
        let mut bad = block.state_changes.clone();
        bad.push((vec![99], None));
        assert_eq!(
            view.apply(block.height, &bad, block.state_root),
            Err(ViewError::UnknownKey)
        );
        assert_eq!((view.height(), view.root()), before);
        let absent = view.prove_account(&address_of(&alice));
        assert_eq!(absent.value, None);
        assert_eq!(verify_proof(&view.root(), &absent), Ok(None));
        view.apply(block.height, &block.state_changes, block.state_root)
            .expect("the right changes");
        assert!(view.prove_account(&address_of(&alice)).value.is_some());
    }
}
