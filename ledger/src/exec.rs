//! Executing one transaction: authorization, limits, fees and the transfer of
//! money, with checked arithmetic throughout.
//!
//! Every action first checks everything, then writes. A transaction that
//! fails a business rule changes nothing but its sender's sequence number;
//! one that fails before that (unknown sender, wrong key, bad sequence,
//! expired, closed sender) changes nothing at all.

use yuchain_proto::pb::{AccountKind, AccountStatus, FreezeMode, ResultCode};
use yuchain_proto::tx::{Action, VerifiedTx, WalletKind};
use yuchain_proto::{Address, Hash32, PublicKey};

use crate::ledger::{Ledger, Touched};
use crate::params::fee_account;
use crate::state::{Account, Payment};

/// Block facts every transaction in it sees.
pub(crate) struct Context {
    pub(crate) height: u64,
    pub(crate) day: u64,
    pub(crate) year: u32,
}

type Outcome = Result<(), ResultCode>;

/// The accounts a transaction involves, for their histories (sender first).
pub(crate) fn participants(tx: &VerifiedTx, ledger: &Ledger) -> Vec<Address> {
    let other = match &tx.action {
        Action::Issue { operator, .. } | Action::Redeem { operator, .. } => Some(*operator),
        Action::RegisterOperator { public_key, .. } | Action::RegisterWallet { public_key, .. } => {
            Some(Address::from_public_key(public_key))
        }
        Action::SetTier { wallet, .. }
        | Action::Freeze { wallet, .. }
        | Action::Unfreeze { wallet }
        | Action::RotateKey { wallet, .. }
        | Action::CloseWallet { wallet } => Some(*wallet),
        Action::Transfer { to, .. } => Some(*to),
        Action::MerchantPayment { merchant, .. } => Some(*merchant),
        Action::Refund { payment_id, .. } => ledger.payment(payment_id).map(|p| p.payer),
        Action::SuspendOperator { operator }
        | Action::ReinstateOperator { operator }
        | Action::RotateOperatorKey { operator, .. } => Some(*operator),
        Action::RotateIssuerKey { .. } => Some(fee_account()),
    };
    let mut accounts = vec![tx.sender];
    if let Some(other) = other
        && other != tx.sender
        && ledger.account(&other).is_some()
    {
        accounts.push(other);
    }
    accounts
}

impl Ledger {
    /// Executes one transaction and returns its result code and the fee
    /// charged.
    pub(crate) fn execute(
        &mut self,
        tx: &VerifiedTx,
        context: &Context,
        touched: &mut Touched,
    ) -> (ResultCode, u64) {
        let Some(sender) = self.accounts.get(&tx.sender) else {
            return (ResultCode::UnknownSender, 0);
        };
        if sender.status == AccountStatus::Closed {
            return (ResultCode::SenderClosed, 0);
        }
        if sender.auth_key != tx.public_key {
            return (ResultCode::WrongKey, 0);
        }
        if tx.sequence != sender.next_sequence {
            return (ResultCode::BadSequence, 0);
        }
        if context.height > tx.expiry_height {
            return (ResultCode::Expired, 0);
        }
        let Some(next_sequence) = sender.next_sequence.checked_add(1) else {
            return (ResultCode::BadSequence, 0);
        };
        let sender_kind = sender.kind;
        self.account_mut(tx.sender, touched).next_sequence = next_sequence;

        let Some(fee) = self.fee_for(&tx.action, sender_kind) else {
            return (ResultCode::Overflow, 0);
        };
        if fee > tx.max_fee {
            return (ResultCode::FeeTooLow, 0);
        }
        match self.execute_action(tx, fee, context, touched) {
            Ok(()) => (ResultCode::Ok, fee),
            Err(code) => (code, 0),
        }
    }

    fn fee_for(&self, action: &Action, sender_kind: AccountKind) -> Option<u64> {
        // The treasury pays no fees: not as the issuer, and not from the fee
        // account, which would only pay them to itself.
        if matches!(sender_kind, AccountKind::Issuer | AccountKind::Fee) {
            return Some(0);
        }
        let fees = &self.params.fees;
        match action {
            Action::Transfer { amount, .. } => fees.transfer.fee(*amount),
            Action::MerchantPayment { amount, .. } => fees.merchant_payment.fee(*amount),
            Action::Refund { amount, .. } => fees.refund.fee(*amount),
            _ => fees.administrative.fee(0),
        }
    }

    fn execute_action(
        &mut self,
        tx: &VerifiedTx,
        fee: u64,
        context: &Context,
        touched: &mut Touched,
    ) -> Outcome {
        let sender = tx.sender;
        match &tx.action {
            Action::Issue { operator, amount } => self.issue(sender, *operator, *amount, touched),
            Action::Redeem { operator, amount } => self.redeem(sender, *operator, *amount, touched),
            Action::RegisterOperator { public_key, name } => {
                self.register_operator(sender, *public_key, name, touched)
            }
            Action::RegisterWallet { public_key, kind } => {
                self.register_wallet(sender, *public_key, kind, fee, touched)
            }
            Action::SetTier { wallet, tier } => {
                self.manage_wallet(sender, *wallet, fee, touched, |params, account| {
                    if account.kind != AccountKind::Personal {
                        return Err(ResultCode::NotPersonal);
                    }
                    let cap = params.limits(*tier).and_then(|limits| limits.balance_max);
                    if cap.is_some_and(|cap| account.balance > cap) {
                        return Err(ResultCode::BalanceLimitExceeded);
                    }
                    account.tier = *tier;
                    Ok(())
                })
            }
            Action::Freeze { wallet, mode } => {
                let status = match mode {
                    FreezeMode::ReceiveOnly => AccountStatus::ReceiveOnly,
                    FreezeMode::Full | FreezeMode::Unspecified => AccountStatus::Frozen,
                };
                self.manage_wallet(sender, *wallet, fee, touched, |_, account| {
                    account.status = status;
                    Ok(())
                })
            }
            Action::Unfreeze { wallet } => {
                self.manage_wallet(sender, *wallet, fee, touched, |_, account| {
                    account.status = AccountStatus::Active;
                    Ok(())
                })
            }
            Action::RotateKey {
                wallet,
                new_public_key,
            } => self.manage_wallet(sender, *wallet, fee, touched, |_, account| {
                account.auth_key = *new_public_key;
                Ok(())
            }),
            Action::CloseWallet { wallet } => {
                self.manage_wallet(sender, *wallet, fee, touched, |_, account| {
                    if account.balance != 0 {
                        return Err(ResultCode::NonzeroBalance);
                    }
                    account.status = AccountStatus::Closed;
                    Ok(())
                })
            }
            Action::Transfer { to, amount, .. } => {
                self.check_recipient_kind(*to)?;
                self.pay(sender, *to, *amount, fee, Some(context), touched)
            }
            Action::MerchantPayment {
                merchant,
                amount,
                order_id,
            } => {
                match self.accounts.get(merchant) {
                    None => return Err(ResultCode::UnknownAccount),
                    Some(account) if account.kind != AccountKind::Merchant => {
                        return Err(ResultCode::NotAMerchant);
                    }
                    Some(_) => {}
                }
                self.pay(sender, *merchant, *amount, fee, Some(context), touched)?;
                self.insert_payment(
                    tx.id,
                    Payment {
                        payer: sender,
                        merchant: *merchant,
                        amount: *amount,
                        refunded: 0,
                        order_id: order_id.clone(),
                    },
                    touched,
                );
                Ok(())
            }
            Action::Refund { payment_id, amount } => {
                self.refund(sender, *payment_id, *amount, fee, touched)
            }
            Action::SuspendOperator { operator } => {
                self.govern_operator(sender, *operator, touched, |account| {
                    if account.status == AccountStatus::Suspended {
                        return Err(ResultCode::AlreadySuspended);
                    }
                    account.status = AccountStatus::Suspended;
                    Ok(())
                })
            }
            Action::ReinstateOperator { operator } => {
                self.govern_operator(sender, *operator, touched, |account| {
                    if account.status != AccountStatus::Suspended {
                        return Err(ResultCode::NotSuspended);
                    }
                    account.status = AccountStatus::Active;
                    Ok(())
                })
            }
            Action::RotateOperatorKey {
                operator,
                new_public_key,
            } => self.govern_operator(sender, *operator, touched, |account| {
                account.auth_key = *new_public_key;
                Ok(())
            }),
            Action::RotateIssuerKey { new_public_key } => {
                self.require_kind(sender, AccountKind::Issuer)?;
                // The treasury's key signs for the issuer and the fee
                // account alike: both move, or the old key would keep the
                // fee account.
                self.account_mut(sender, touched).auth_key = *new_public_key;
                self.account_mut(fee_account(), touched).auth_key = *new_public_key;
                Ok(())
            }
        }
    }

    /// Runs the issuer's change on an operator: the sender must be the
    /// issuer and the target an operator.
    fn govern_operator(
        &mut self,
        sender: Address,
        operator: Address,
        touched: &mut Touched,
        change: impl FnOnce(&mut Account) -> Outcome,
    ) -> Outcome {
        self.require_kind(sender, AccountKind::Issuer)?;
        let account = self
            .accounts
            .get(&operator)
            .ok_or(ResultCode::UnknownAccount)?;
        if account.kind != AccountKind::Operator {
            return Err(ResultCode::NotAnOperator);
        }
        let mut updated = account.clone();
        change(&mut updated)?;
        self.insert_account(updated, touched);
        Ok(())
    }

    /// Checks that `sender` is an operator that is not suspended.
    fn require_active_operator(&self, sender: Address) -> Outcome {
        match self.accounts.get(&sender) {
            Some(account) if account.kind == AccountKind::Operator => {
                if account.status == AccountStatus::Suspended {
                    Err(ResultCode::OperatorSuspended)
                } else {
                    Ok(())
                }
            }
            _ => Err(ResultCode::Unauthorized),
        }
    }

    /// The reserve balance of `operator`, for an issuer action by `sender`:
    /// only the issuer acts, and only on an operator's reserve.
    fn reserve_for_issuer(&self, sender: Address, operator: Address) -> Result<u64, ResultCode> {
        self.require_kind(sender, AccountKind::Issuer)?;
        let target = self
            .accounts
            .get(&operator)
            .ok_or(ResultCode::UnknownAccount)?;
        if target.kind != AccountKind::Operator {
            return Err(ResultCode::NotAnOperator);
        }
        Ok(target.balance)
    }

    fn issue(
        &mut self,
        sender: Address,
        operator: Address,
        amount: u64,
        touched: &mut Touched,
    ) -> Outcome {
        let balance = self.reserve_for_issuer(sender, operator)?;
        if self
            .accounts
            .get(&operator)
            .is_some_and(|account| account.status == AccountStatus::Suspended)
        {
            return Err(ResultCode::OperatorSuspended);
        }
        let balance = balance.checked_add(amount).ok_or(ResultCode::Overflow)?;
        let issued = self
            .totals
            .issued
            .checked_add(amount)
            .ok_or(ResultCode::Overflow)?;
        self.account_mut(operator, touched).balance = balance;
        self.totals.issued = issued;
        Ok(())
    }

    fn redeem(
        &mut self,
        sender: Address,
        operator: Address,
        amount: u64,
        touched: &mut Touched,
    ) -> Outcome {
        let balance = self
            .reserve_for_issuer(sender, operator)?
            .checked_sub(amount)
            .ok_or(ResultCode::InsufficientFunds)?;
        let redeemed = self
            .totals
            .redeemed
            .checked_add(amount)
            .ok_or(ResultCode::Overflow)?;
        assert!(
            redeemed <= self.totals.issued,
            "reserves hold only issued money"
        );
        self.account_mut(operator, touched).balance = balance;
        self.totals.redeemed = redeemed;
        Ok(())
    }

    fn register_operator(
        &mut self,
        sender: Address,
        public_key: PublicKey,
        name: &str,
        touched: &mut Touched,
    ) -> Outcome {
        self.require_kind(sender, AccountKind::Issuer)?;
        let mut operator = Account::new(public_key, AccountKind::Operator);
        if self.accounts.contains_key(&operator.address) {
            return Err(ResultCode::AccountExists);
        }
        operator.name = name.to_string();
        self.insert_account(operator, touched);
        Ok(())
    }

    fn register_wallet(
        &mut self,
        sender: Address,
        public_key: PublicKey,
        kind: &WalletKind,
        fee: u64,
        touched: &mut Touched,
    ) -> Outcome {
        self.require_active_operator(sender)?;
        let mut wallet = match kind {
            WalletKind::Personal(tier) => {
                let mut wallet = Account::new(public_key, AccountKind::Personal);
                wallet.tier = *tier;
                wallet
            }
            WalletKind::Corporate { name } => {
                let mut wallet = Account::new(public_key, AccountKind::Corporate);
                wallet.name = name.clone();
                wallet
            }
            WalletKind::Merchant(category) => {
                let mut wallet = Account::new(public_key, AccountKind::Merchant);
                wallet.category = *category;
                wallet
            }
        };
        if self.accounts.contains_key(&wallet.address) {
            return Err(ResultCode::AccountExists);
        }
        self.charge_fee(sender, fee, touched)?;
        wallet.operator = Some(sender);
        self.insert_account(wallet, touched);
        Ok(())
    }

    /// Runs an operator's change on one of its wallets: the sender must be
    /// the wallet's operator, the wallet must not be closed, and `change`
    /// must accept. The fee is charged only if all of that holds.
    fn manage_wallet(
        &mut self,
        sender: Address,
        wallet: Address,
        fee: u64,
        touched: &mut Touched,
        change: impl FnOnce(&crate::params::ChainParams, &mut Account) -> Outcome,
    ) -> Outcome {
        let account = self
            .accounts
            .get(&wallet)
            .ok_or(ResultCode::UnknownAccount)?;
        if account.operator != Some(sender) {
            return Err(ResultCode::Unauthorized);
        }
        self.require_active_operator(sender)?;
        if account.status == AccountStatus::Closed {
            return Err(ResultCode::RecipientClosed);
        }
        let mut updated = account.clone();
        change(&self.params, &mut updated)?;
        self.charge_fee(sender, fee, touched)?;
        self.insert_account(updated, touched);
        Ok(())
    }

    fn refund(
        &mut self,
        sender: Address,
        payment_id: Hash32,
        amount: u64,
        fee: u64,
        touched: &mut Touched,
    ) -> Outcome {
        let payment = self
            .payments
            .get(&payment_id)
            .ok_or(ResultCode::UnknownPayment)?;
        if payment.merchant != sender {
            return Err(ResultCode::Unauthorized);
        }
        let refunded = payment
            .refunded
            .checked_add(amount)
            .ok_or(ResultCode::Overflow)?;
        if refunded > payment.amount {
            return Err(ResultCode::RefundExceedsPayment);
        }
        let mut payment = payment.clone();
        let payer = payment.payer;
        // A refund is not spending: the merchant's limits do not apply.
        self.pay(sender, payer, amount, fee, None, touched)?;
        payment.refunded = refunded;
        self.insert_payment(payment_id, payment, touched);
        Ok(())
    }

    fn check_recipient_kind(&self, to: Address) -> Outcome {
        match self.accounts.get(&to).map(|account| account.kind) {
            None => Err(ResultCode::UnknownAccount),
            // Money sent to the issuer or straight to the fee account could
            // never be accounted for as issuance, redemption or fees.
            Some(AccountKind::Issuer) | Some(AccountKind::Fee) => Err(ResultCode::InvalidArgument),
            Some(_) => Ok(()),
        }
    }

    /// Moves `amount` from `from` to `to` and `fee` from `from` to the fee
    /// account. With `spending`, the sender's per-payment, daily and annual
    /// limits apply and its counters move.
    fn pay(
        &mut self,
        from: Address,
        to: Address,
        amount: u64,
        fee: u64,
        spending: Option<&Context>,
        touched: &mut Touched,
    ) -> Outcome {
        if from == to {
            return Err(ResultCode::SelfTransfer);
        }
        let sender = self.accounts.get(&from).ok_or(ResultCode::UnknownSender)?;
        match sender.status {
            AccountStatus::Active => {}
            AccountStatus::Frozen | AccountStatus::ReceiveOnly => {
                return Err(ResultCode::SenderFrozen);
            }
            AccountStatus::Suspended => return Err(ResultCode::OperatorSuspended),
            AccountStatus::Closed | AccountStatus::Unspecified => {
                return Err(ResultCode::SenderClosed);
            }
        }
        let recipient = self.accounts.get(&to).ok_or(ResultCode::UnknownAccount)?;
        match recipient.status {
            // A suspended operator still receives, like a receive-only
            // wallet: its customers may pay it back.
            AccountStatus::Active | AccountStatus::ReceiveOnly | AccountStatus::Suspended => {}
            AccountStatus::Frozen => return Err(ResultCode::RecipientFrozen),
            AccountStatus::Closed | AccountStatus::Unspecified => {
                return Err(ResultCode::RecipientClosed);
            }
        }

        // Spending limits of the sender's class.
        let mut counters = None;
        if let Some(context) = spending
            && sender.kind == AccountKind::Personal
        {
            let limits = self.params.limits(sender.tier);
            let spent_day = if sender.spend_day == context.day {
                sender.spent_day
            } else {
                0
            };
            let spent_year = if sender.spend_year == context.year {
                sender.spent_year
            } else {
                0
            };
            let spent_day = spent_day.checked_add(amount).ok_or(ResultCode::Overflow)?;
            let spent_year = spent_year.checked_add(amount).ok_or(ResultCode::Overflow)?;
            if let Some(limits) = limits {
                if limits.per_payment_max.is_some_and(|max| amount > max) {
                    return Err(ResultCode::PerPaymentLimitExceeded);
                }
                if limits.daily_max.is_some_and(|max| spent_day > max) {
                    return Err(ResultCode::DailyLimitExceeded);
                }
                if limits.annual_max.is_some_and(|max| spent_year > max) {
                    return Err(ResultCode::AnnualLimitExceeded);
                }
            }
            counters = Some((context.day, spent_day, context.year, spent_year));
        }

        // Funds: checked after the limits, so a payment over its class's
        // limit is reported as such whatever the balance. Every balance moves
        // through one list, so an account in two roles (the fee account
        // paying, or refunded) is debited and credited on its running
        // balance, never written twice from stale values.
        let recipient_kind = recipient.kind;
        let recipient_tier = recipient.tier;
        let debit = amount.checked_add(fee).ok_or(ResultCode::Overflow)?;
        let mut balances = BalanceChanges::default();
        balances.seed(from, sender.balance);
        balances.seed(to, recipient.balance);
        balances.debit(self, from, debit)?;
        balances.credit(self, to, amount)?;
        balances.credit(self, fee_account(), fee)?;

        // The recipient's balance cap.
        if recipient_kind == AccountKind::Personal {
            let cap = self
                .params
                .limits(recipient_tier)
                .and_then(|limits| limits.balance_max);
            if cap.is_some_and(|cap| balances.balance(to) > Some(cap)) {
                return Err(ResultCode::BalanceLimitExceeded);
            }
        }

        // Every check passed: write.
        for (address, balance) in balances.entries() {
            let account = self.account_mut(address, touched);
            account.balance = balance;
            if address == from
                && let Some((day, spent_day, year, spent_year)) = counters
            {
                account.spend_day = day;
                account.spent_day = spent_day;
                account.spend_year = year;
                account.spent_year = spent_year;
            }
        }
        Ok(())
    }

    /// Charges an administrative fee to `payer`.
    fn charge_fee(&mut self, payer: Address, fee: u64, touched: &mut Touched) -> Outcome {
        if fee == 0 {
            return Ok(());
        }
        let mut balances = BalanceChanges::default();
        balances.debit(self, payer, fee)?;
        balances.credit(self, fee_account(), fee)?;
        balances.write(self, touched);
        Ok(())
    }

    fn require_kind(&self, sender: Address, kind: AccountKind) -> Outcome {
        match self.accounts.get(&sender) {
            Some(account) if account.kind == kind => Ok(()),
            _ => Err(ResultCode::Unauthorized),
        }
    }

    /// The account at `address`, to change it; remembers its value before
    /// the block's first change, for the block's conservation check.
    pub(crate) fn account_mut(&mut self, address: Address, touched: &mut Touched) -> &mut Account {
        touched.remember_account(&self.accounts, address);
        self.accounts
            .get_mut(&address)
            .expect("checked to exist before writing")
    }

    /// Writes a whole account (new or changed).
    fn insert_account(&mut self, account: Account, touched: &mut Touched) {
        touched.remember_account(&self.accounts, account.address);
        self.accounts.insert(account.address, account);
    }

    /// Writes a merchant payment record (new or changed).
    fn insert_payment(&mut self, id: Hash32, payment: Payment, touched: &mut Touched) {
        touched.remember_payment(&self.payments, id);
        self.payments.insert(id, payment);
    }
}

/// The new balances of the few accounts one payment moves (sender,
/// recipient, fee account: at most three), computed with checked arithmetic
/// before anything is written. Kept inline, with no allocation: it runs for
/// every payment.
#[derive(Default)]
struct BalanceChanges {
    /// (account, its balance after the changes so far), `len` of them used.
    balances: [(Address, u64); 3],
    len: usize,
}

impl BalanceChanges {
    /// Starts `address` at `balance`, read by the caller from the ledger.
    fn seed(&mut self, address: Address, balance: u64) {
        if self.position(address).is_none() {
            self.push(address, balance);
        }
    }

    fn position(&self, address: Address) -> Option<usize> {
        self.balances[..self.len]
            .iter()
            .position(|(a, _)| *a == address)
    }

    fn push(&mut self, address: Address, balance: u64) -> usize {
        assert!(
            self.len < self.balances.len(),
            "a payment moves at most three balances"
        );
        self.balances[self.len] = (address, balance);
        self.len += 1;
        self.len - 1
    }

    /// The running balance of `address` (from the ledger on first use).
    fn slot(&mut self, ledger: &Ledger, address: Address) -> Result<&mut u64, ResultCode> {
        let index = match self.position(address) {
            Some(index) => index,
            None => {
                let account = ledger
                    .accounts
                    .get(&address)
                    .ok_or(ResultCode::UnknownAccount)?;
                self.push(address, account.balance)
            }
        };
        Ok(&mut self.balances[index].1)
    }

    fn debit(&mut self, ledger: &Ledger, address: Address, amount: u64) -> Outcome {
        let balance = self.slot(ledger, address)?;
        *balance = balance
            .checked_sub(amount)
            .ok_or(ResultCode::InsufficientFunds)?;
        Ok(())
    }

    fn credit(&mut self, ledger: &Ledger, address: Address, amount: u64) -> Outcome {
        if amount == 0 {
            return Ok(());
        }
        let balance = self.slot(ledger, address)?;
        *balance = balance.checked_add(amount).ok_or(ResultCode::Overflow)?;
        Ok(())
    }

    fn balance(&self, address: Address) -> Option<u64> {
        self.position(address).map(|index| self.balances[index].1)
    }

    /// Every changed account and its new balance.
    fn entries(&self) -> impl Iterator<Item = (Address, u64)> + '_ {
        self.balances[..self.len].iter().copied()
    }

    fn write(self, ledger: &mut Ledger, touched: &mut Touched) {
        for (address, balance) in self.entries() {
            ledger.account_mut(address, touched).balance = balance;
        }
    }
}
