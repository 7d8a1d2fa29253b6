//! `yuchain audit` end to end against a real 4-validator cluster on
//! loopback: the banks are funded and wallets opened and topped up through
//! the gateways; an auditor replays the chain from a validator's
//! StreamBlocks while it runs, then from a stopped validator's data
//! directory (its stored state compared entry by entry), exports it,
//! reports the supply and checks a saved account proof offline.
//!
//! Needs the `yuchain-node` binary next to `yuchain` (the workspace test
//! run builds both). The cluster owns its node processes and kills them
//! when dropped, also when the test fails.

use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;

use yuchain_cli::cluster::{Cluster, ClusterConfig};

fn yuchain(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_yuchain"))
        .args(args)
        .env("YUCHAIN_PROFILE", "/nonexistent/yuchain-profile.toml")
        .output()
        .expect("yuchain runs")
}

fn json_of(args: &[&str]) -> serde_json::Value {
    let output = yuchain(args);
    let stdout = String::from_utf8_lossy(&output.stdout).to_string();
    assert!(
        output.status.success(),
        "yuchain {args:?} failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_str(stdout.trim()).unwrap_or_else(|error| panic!("{error}: {stdout}"))
}

#[test]
fn an_auditor_replays_a_running_cluster_and_a_stopped_validators_data_directory() {
    let dir = tempfile::tempdir().expect("a temp dir");
    let node_binary = Path::new(env!("CARGO_BIN_EXE_yuchain")).with_file_name("yuchain-node");
    assert!(
        node_binary.exists(),
        "build yuchain-node first (cargo build -p yuchain-node); the workspace test run does"
    );
    let mut config = ClusterConfig::devnet(dir.path().join("cluster"), node_binary);
    config.round_timeout_ms = Some(400);
    let mut cluster = Cluster::create(config).expect("a cluster");
    let runtime = tokio::runtime::Runtime::new().expect("a runtime");
    runtime
        .block_on(cluster.start_all_and_wait(Duration::from_secs(60)))
        .expect("the cluster runs");
    runtime
        .block_on(yuchain_cli::load::fund_wallets(&cluster, 8))
        .expect("wallets funded");
    let genesis = dir.path().join("cluster/genesis.toml");
    let genesis = genesis.to_str().expect("a path");
    let node = cluster.nodes[0].endpoint();

    // From the stream of a running validator.
    let streamed = json_of(&[
        "audit",
        "replay",
        "--node",
        &node,
        "--genesis",
        genesis,
        "--json",
    ]);
    assert_eq!(streamed["ok"], true, "{streamed}");
    let streamed_height = streamed["to_height"].as_u64().expect("a height");
    assert!(streamed_height > 0, "{streamed}");
    // Registrations and top-ups of 8 wallets, and the banks' issuance.
    assert!(
        streamed["executed"]["transactions"].as_u64() >= Some(8 + 8 + 3),
        "{streamed}"
    );
    assert_eq!(streamed["state_compared_at"], serde_json::Value::Null);

    // A proof of a bank's reserve, saved and checked offline.
    let bank = cluster.operator_address(0).to_string();
    let answer = dir.path().join("bank.answer");
    let answer = answer.to_str().expect("a path");
    let balance = json_of(&[
        "wallet",
        "balance",
        &bank,
        "--save",
        answer,
        "--node",
        &node,
        "--genesis",
        genesis,
        "--json",
    ]);
    let proof = json_of(&[
        "audit",
        "proof",
        "--answer",
        answer,
        "--address",
        &bank,
        "--genesis",
        genesis,
        "--json",
    ]);
    assert_eq!(proof["valid"], true, "{proof}");
    assert_eq!(
        proof["balance_fen"], balance["account"]["balance_fen"],
        "{proof} {balance}"
    );

    // From a stopped validator's data directory: its stored state too.
    cluster.stop(3, Duration::from_secs(10)).expect("stopped");
    let home = cluster.nodes[3].home.to_str().expect("a path").to_string();
    let offline = json_of(&[
        "audit",
        "replay",
        "--data-dir",
        &home,
        "--genesis",
        genesis,
        "--json",
    ]);
    assert_eq!(offline["ok"], true, "{offline}");
    let height = offline["to_height"].as_u64().expect("a height");
    assert!(height >= streamed_height.min(height), "{offline}");
    assert_eq!(
        offline["state_compared_at"].as_u64(),
        Some(height),
        "{offline}"
    );

    let supply = json_of(&[
        "audit",
        "supply",
        "--data-dir",
        &home,
        "--genesis",
        genesis,
        "--json",
    ]);
    assert_eq!(supply["issued_fen"], offline["issued"], "{supply}");
    let operators = supply["operators"].as_array().expect("operators");
    let issued: u64 = operators
        .iter()
        .map(|row| row["issued_fen"].as_u64().unwrap_or(0))
        .sum();
    assert_eq!(Some(issued), supply["issued_fen"].as_u64(), "{supply}");

    let export = dir.path().join("transactions.csv");
    let export = export.to_str().expect("a path");
    let output = yuchain(&[
        "audit",
        "export",
        "--data-dir",
        &home,
        "--genesis",
        genesis,
        "--what",
        "transactions",
        "--out",
        export,
        "--no-progress",
    ]);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let rows = std::fs::read_to_string(export).expect("the export");
    assert_eq!(
        rows.lines().count() as u64,
        offline["executed"]["transactions"]
            .as_u64()
            .expect("a count")
            + 1,
        "a header and a row per transaction"
    );

    // A genesis file with one validator key swapped: block 1 fails, on
    // that validator's signature if it signed the first certificate, else
    // on the genesis hash it names; the exit status says so.
    let text = std::fs::read_to_string(genesis).expect("the genesis file");
    let card = cluster.nodes[1].home.join("validator.toml");
    let card = std::fs::read_to_string(card).expect("a validator card");
    let key = card
        .lines()
        .find_map(|line| line.strip_prefix("consensus_public_key = "))
        .map(|value| value.trim().trim_matches('"').to_string())
        .expect("its consensus key");
    let impostor = hex::encode(
        yuchain_proto::SigningKey::for_test("impostor")
            .public_key()
            .0,
    );
    let swapped = dir.path().join("swapped.toml");
    std::fs::write(&swapped, text.replace(&key, &impostor)).expect("written");
    let output = yuchain(&[
        "audit",
        "replay",
        "--data-dir",
        &home,
        "--genesis",
        swapped.to_str().expect("a path"),
        "--json",
    ]);
    assert_eq!(
        output.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).expect("json");
    assert_eq!(report["discrepancy"]["height"], 1, "{report}");
    let what = report["discrepancy"]["what"].as_str().unwrap_or_default();
    assert!(
        what == "the finality certificate" || what == "the consensus block's parent",
        "{report}"
    );

    cluster.stop_all(Duration::from_secs(10)).expect("stopped");
}
