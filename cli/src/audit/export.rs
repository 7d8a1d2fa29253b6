//! Exports of the replayed chain, written row by row as blocks execute (a
//! large chain never sits in memory), as CSV (RFC 4180 quoting) or JSON
//! Lines. Every row comes from a block replay verified and re-executed, not
//! from what the source claims.

use std::io::Write;

use yuchain_proto::tx::Action;
use yuchain_proto::{Address, pb};

use super::error::Result;
use super::replay::{Executed, Sink};

/// An export's format.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// Comma-separated values with a header row.
    Csv,
    /// One JSON object per line.
    Jsonl,
}

/// One field of a row.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Field {
    /// Text.
    Text(String),
    /// A number.
    Number(u64),
}

impl From<String> for Field {
    fn from(text: String) -> Field {
        Field::Text(text)
    }
}

impl From<&str> for Field {
    fn from(text: &str) -> Field {
        Field::Text(text.to_string())
    }
}

impl From<u64> for Field {
    fn from(number: u64) -> Field {
        Field::Number(number)
    }
}

/// Writes rows of fixed columns.
pub struct RowWriter<W: Write> {
    out: W,
    format: Format,
    columns: &'static [&'static str],
    started: bool,
    /// Rows written.
    pub rows: u64,
}

impl<W: Write> RowWriter<W> {
    /// A writer of rows with `columns` to `out`.
    pub fn new(out: W, format: Format, columns: &'static [&'static str]) -> RowWriter<W> {
        RowWriter {
            out,
            format,
            columns,
            started: false,
            rows: 0,
        }
    }

    /// Writes the header (CSV) if not yet written: an empty export still
    /// has its columns.
    pub fn start(&mut self) -> std::io::Result<()> {
        if self.started {
            return Ok(());
        }
        self.started = true;
        if self.format == Format::Csv {
            let header: Vec<String> = self.columns.iter().map(|c| csv_field(c)).collect();
            writeln!(self.out, "{}", header.join(","))?;
        }
        Ok(())
    }

    /// Writes one row (one field per column, in order).
    pub fn row(&mut self, fields: &[Field]) -> std::io::Result<()> {
        self.start()?;
        debug_assert_eq!(fields.len(), self.columns.len(), "one field per column");
        match self.format {
            Format::Csv => {
                let line: Vec<String> = fields
                    .iter()
                    .map(|field| match field {
                        Field::Text(text) => csv_field(text),
                        Field::Number(number) => number.to_string(),
                    })
                    .collect();
                writeln!(self.out, "{}", line.join(","))?;
            }
            Format::Jsonl => {
                let mut line = String::from("{");
                for (index, (column, field)) in self.columns.iter().zip(fields).enumerate() {
                    if index > 0 {
                        line.push(',');
                    }
                    line.push_str(&json_string(column));
                    line.push(':');
                    match field {
                        Field::Text(text) => line.push_str(&json_string(text)),
                        Field::Number(number) => line.push_str(&number.to_string()),
                    }
                }
                line.push('}');
                writeln!(self.out, "{line}")?;
            }
        }
        self.rows += 1;
        Ok(())
    }

    /// Flushes and returns the output.
    pub fn finish(mut self) -> std::io::Result<W> {
        self.start()?;
        self.out.flush()?;
        Ok(self.out)
    }
}

fn json_string(text: &str) -> String {
    serde_json::Value::String(text.to_string()).to_string()
}

/// A CSV field, quoted when it holds a comma, quote, or line break.
pub fn csv_field(text: &str) -> String {
    if text.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", text.replace('"', "\"\""))
    } else {
        text.to_string()
    }
}

/// What a transaction does, for a row: its kind, the other party and the
/// amount.
pub fn describe_action(action: &Action) -> (&'static str, String, u64) {
    let address = |address: &Address| address.to_string();
    match action {
        Action::Issue { operator, amount } => ("issue", address(operator), *amount),
        Action::Redeem { operator, amount } => ("redeem", address(operator), *amount),
        Action::RegisterOperator { public_key, .. } => (
            "register_operator",
            Address::from_public_key(public_key).to_string(),
            0,
        ),
        Action::RegisterWallet { public_key, .. } => (
            "register_wallet",
            Address::from_public_key(public_key).to_string(),
            0,
        ),
        Action::SetTier { wallet, .. } => ("set_tier", address(wallet), 0),
        Action::Freeze { wallet, .. } => ("freeze", address(wallet), 0),
        Action::Unfreeze { wallet } => ("unfreeze", address(wallet), 0),
        Action::RotateKey { wallet, .. } => ("rotate_key", address(wallet), 0),
        Action::CloseWallet { wallet } => ("close_wallet", address(wallet), 0),
        Action::Transfer { to, amount, .. } => ("transfer", address(to), *amount),
        Action::MerchantPayment {
            merchant, amount, ..
        } => ("merchant_payment", address(merchant), *amount),
        Action::Refund { payment_id, amount } => ("refund", payment_id.to_string(), *amount),
        Action::SuspendOperator { operator } => ("suspend_operator", address(operator), 0),
        Action::ReinstateOperator { operator } => ("reinstate_operator", address(operator), 0),
        Action::RotateOperatorKey { operator, .. } => ("rotate_operator_key", address(operator), 0),
        Action::RotateIssuerKey { .. } => ("rotate_issuer_key", String::new(), 0),
    }
}

/// A receipt's code as a name (`SUCCESS`, `INSUFFICIENT_FUNDS`, ...).
pub fn code_name(receipt: &pb::Receipt) -> String {
    pb::ResultCode::try_from(receipt.code)
        .map(|code| {
            code.as_str_name()
                .trim_start_matches("RESULT_CODE_")
                .to_string()
        })
        .unwrap_or_else(|_| receipt.code.to_string())
}

/// The columns of a transactions export.
pub const TRANSACTION_COLUMNS: &[&str] = &[
    "height",
    "index",
    "tx_id",
    "timestamp_ms",
    "sender",
    "sequence",
    "action",
    "counterparty",
    "amount_fen",
    "max_fee_fen",
    "code",
    "fee_fen",
];

/// The columns of a receipts export.
pub const RECEIPT_COLUMNS: &[&str] = &["height", "index", "tx_id", "code", "fee_fen"];

/// The columns of an account history export.
pub const HISTORY_COLUMNS: &[&str] = &[
    "height",
    "index",
    "tx_id",
    "timestamp_ms",
    "sender",
    "action",
    "counterparty",
    "amount_fen",
    "code",
    "fee_fen",
    "balance_after_block_fen",
];

/// The columns of a balances export.
pub const BALANCE_COLUMNS: &[&str] = &[
    "address",
    "kind",
    "status",
    "tier",
    "operator",
    "balance_fen",
    "next_sequence",
];

/// What is exported per block.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Rows {
    /// Every transaction with its receipt's code and fee.
    Transactions,
    /// Every receipt.
    Receipts,
    /// The transactions that involved one account.
    History(Address),
    /// Nothing per block (balances are written at the end).
    Nothing,
}

/// A sink that writes a row per transaction.
pub struct RowSink<W: Write> {
    /// The writer.
    pub writer: RowWriter<W>,
    rows: Rows,
}

impl<W: Write> RowSink<W> {
    /// Rows of `rows` to `writer`.
    pub fn new(writer: RowWriter<W>, rows: Rows) -> RowSink<W> {
        RowSink { writer, rows }
    }
}

impl<W: Write> Sink for RowSink<W> {
    fn block(&mut self, executed: &Executed<'_>) -> Result<()> {
        match self.rows {
            Rows::Nothing => {}
            Rows::Transactions => {
                for (tx, receipt) in executed.transactions.iter().zip(executed.receipts) {
                    let (action, counterparty, amount) = describe_action(&tx.action);
                    self.writer.row(&[
                        executed.height.into(),
                        u64::from(receipt.index).into(),
                        tx.id.to_string().into(),
                        executed.timestamp_ms.into(),
                        tx.sender.to_string().into(),
                        tx.sequence.into(),
                        action.into(),
                        counterparty.into(),
                        amount.into(),
                        tx.max_fee.into(),
                        code_name(receipt).into(),
                        receipt.fee.into(),
                    ])?;
                }
            }
            Rows::Receipts => {
                for receipt in executed.receipts {
                    self.writer.row(&[
                        executed.height.into(),
                        u64::from(receipt.index).into(),
                        hex::encode(&receipt.tx_id).into(),
                        code_name(receipt).into(),
                        receipt.fee.into(),
                    ])?;
                }
            }
            Rows::History(account) => {
                let balance = executed
                    .ledger
                    .account(&account)
                    .map_or(0, |account| account.balance);
                let mut last: Option<u32> = None;
                for (address, index, _) in executed.history {
                    // One row per transaction, even if the account had two
                    // roles in it.
                    if *address != account || last == Some(*index) {
                        continue;
                    }
                    last = Some(*index);
                    let position = usize::try_from(*index).unwrap_or(usize::MAX);
                    let (Some(tx), Some(receipt)) = (
                        executed.transactions.get(position),
                        executed.receipts.get(position),
                    ) else {
                        continue;
                    };
                    let (action, counterparty, amount) = describe_action(&tx.action);
                    self.writer.row(&[
                        executed.height.into(),
                        u64::from(*index).into(),
                        tx.id.to_string().into(),
                        executed.timestamp_ms.into(),
                        tx.sender.to_string().into(),
                        action.into(),
                        counterparty.into(),
                        amount.into(),
                        code_name(receipt).into(),
                        receipt.fee.into(),
                        balance.into(),
                    ])?;
                }
            }
        }
        Ok(())
    }
}

/// The accounts among replayed state entries, in address order.
pub fn accounts<'a>(
    state: impl Iterator<Item = (&'a Vec<u8>, &'a Vec<u8>)>,
) -> impl Iterator<Item = pb::Account> {
    use prost::Message as _;
    state.filter_map(|(key, value)| {
        matches!(
            yuchain_ledger::StateKey::from_bytes(key),
            Some(yuchain_ledger::StateKey::Account(_))
        )
        .then(|| pb::Account::decode(value.as_slice()).ok())
        .flatten()
    })
}

/// Writes one row per account from the replayed state entries (in address
/// order), as of the height replay stopped at.
pub fn write_balances<'a, W: Write>(
    writer: &mut RowWriter<W>,
    state: impl Iterator<Item = (&'a Vec<u8>, &'a Vec<u8>)>,
) -> Result<()> {
    writer.start()?;
    for account in accounts(state) {
        let address = Address::from_slice(&account.address)
            .map(|a| a.to_string())
            .unwrap_or_default();
        let operator = Address::from_slice(&account.operator)
            .map(|a| a.to_string())
            .unwrap_or_default();
        writer.row(&[
            address.into(),
            account.kind().as_str_name().into(),
            account.status().as_str_name().into(),
            account.tier().as_str_name().into(),
            operator.into(),
            account.balance.into(),
            account.next_sequence.into(),
        ])?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_quotes_what_needs_quoting_and_jsonl_escapes() {
        assert_eq!(csv_field("plain"), "plain");
        assert_eq!(csv_field("a,b"), "\"a,b\"");
        assert_eq!(csv_field("say \"hi\""), "\"say \"\"hi\"\"\"");
        let mut csv = RowWriter::new(Vec::new(), Format::Csv, &["memo", "amount_fen"]);
        csv.row(&["lunch, 2 people".into(), 1234u64.into()])
            .expect("row");
        let text = String::from_utf8(csv.finish().expect("done")).expect("utf-8");
        assert_eq!(text, "memo,amount_fen\n\"lunch, 2 people\",1234\n");
        let mut jsonl = RowWriter::new(Vec::new(), Format::Jsonl, &["memo", "amount_fen"]);
        jsonl
            .row(&["a \"quote\"\n".into(), 5u64.into()])
            .expect("row");
        let text = String::from_utf8(jsonl.finish().expect("done")).expect("utf-8");
        let value: serde_json::Value = serde_json::from_str(text.trim()).expect("json");
        assert_eq!(value["memo"], "a \"quote\"\n");
        assert_eq!(value["amount_fen"], 5);
    }
}
