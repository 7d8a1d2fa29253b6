//! The README's run command, end to end: the demo runs a day of payments
//! through the ledger and RocksDB, tells what the rules refused, and reloads
//! the same root from the store.

use std::process::Command;

#[test]
fn the_demo_refuses_what_it_should_and_reloads_the_same_root() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data_dir = dir.path().join("chain");
    let output = Command::new(env!("CARGO_BIN_EXE_yuchain-node"))
        .args([
            "demo",
            "--wallets",
            "24",
            "--payments-per-block",
            "30",
            "--data-dir",
        ])
        .arg(&data_dir)
        .output()
        .expect("run yuchain-node demo");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "demo failed: {stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    for expected in [
        "a class-4 wallet tries to pay 3,000.00 yuan: PerPaymentLimitExceeded",
        "a frozen wallet tries to pay: SenderFrozen",
        "the new phone pays: Ok",
        "(conservation holds)",
        "verified against the root",
        "same root — nothing lost",
    ] {
        assert!(
            stdout.contains(expected),
            "missing {expected:?} in:\n{stdout}"
        );
    }
    // The store stays, and a second run refuses to overwrite it.
    let again = Command::new(env!("CARGO_BIN_EXE_yuchain-node"))
        .args(["demo", "--data-dir"])
        .arg(&data_dir)
        .output()
        .expect("run yuchain-node demo again");
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("is not empty"));
}
