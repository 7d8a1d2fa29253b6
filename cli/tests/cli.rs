//! The `yuchain` CLI end to end against a real 4-validator cluster on
//! loopback: a bank registers wallets, the issuer issues, wallets pay, a
//! merchant charges and refunds, a bank freezes and re-keys a wallet, and
//! every balance is checked against the validators' certificate, also
//! offline from a saved answer (and a tampered one is refused).
//!
//! Needs the `yuchain-node` binary next to `yuchain` (the workspace test
//! run builds both). The cluster owns its node processes and kills them when
//! dropped, also when the test fails.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use prost::Message as _;
use yuchain_cli::cluster::{Cluster, ClusterConfig};
use yuchain_proto::{SigningKey, pb};

/// The whole test finishes within this, or fails.
const TEST_TIMEOUT: Duration = Duration::from_secs(240);

struct Env {
    dir: PathBuf,
    node: String,
    genesis: PathBuf,
    deadline: Instant,
}

impl Env {
    /// Runs `yuchain` with `args` against the cluster's first node.
    fn run(&self, args: &[&str]) -> Output {
        assert!(Instant::now() < self.deadline, "the test ran out of time");
        let mut command = Command::new(env!("CARGO_BIN_EXE_yuchain"));
        command.args(args);
        if !matches!(args.first(), Some(&"keys" | &"completions")) {
            command
                .arg("--node")
                .arg(&self.node)
                .arg("--genesis")
                .arg(&self.genesis);
        }
        // No profile of the machine's user leaks in.
        command
            .env("YUCHAIN_PROFILE", self.dir.join("no-profile.toml"))
            .output()
            .expect("yuchain runs")
    }

    /// Runs and expects success; returns stdout.
    fn ok(&self, args: &[&str]) -> String {
        let output = self.run(args);
        let stdout = String::from_utf8_lossy(&output.stdout).to_string();
        assert!(
            output.status.success(),
            "yuchain {args:?} failed:\n{stdout}\n{}",
            String::from_utf8_lossy(&output.stderr)
        );
        stdout
    }

    /// Runs with --json and expects success.
    fn json(&self, args: &[&str]) -> serde_json::Value {
        let mut with = args.to_vec();
        with.push("--json");
        let stdout = self.ok(&with);
        serde_json::from_str(&stdout).unwrap_or_else(|error| panic!("{error}: {stdout}"))
    }

    /// Runs and expects failure; returns stderr.
    fn fails(&self, args: &[&str]) -> String {
        let output = self.run(args);
        assert!(
            !output.status.success(),
            "yuchain {args:?} should have failed"
        );
        String::from_utf8_lossy(&output.stderr).to_string()
    }

    fn key(&self, name: &str, key: &SigningKey) -> String {
        let path = self.dir.join(format!("{name}.pem"));
        key.save_pem(&path).expect("key saved");
        path.display().to_string()
    }
}

fn new_key(env: &Env, name: &str) -> (String, String, String) {
    let path = env.dir.join(format!("{name}.pem"));
    let shown = env.ok(&["keys", "new", "--out", &path.display().to_string()]);
    let field = |label: &str| {
        shown
            .lines()
            .find_map(|line| line.strip_prefix(label))
            .map(|rest| rest.trim().to_string())
            .unwrap_or_else(|| panic!("no {label} in {shown}"))
    };
    (
        path.display().to_string(),
        field("public key:"),
        field("address:"),
    )
}

fn balance_fen(env: &Env, key: &str, min_height: u64) -> u64 {
    let answer = env.json(&[
        "wallet",
        "balance",
        "--key",
        key,
        "--min-height",
        &min_height.to_string(),
    ]);
    assert_eq!(answer["pinned"], true, "{answer}");
    assert!(answer["signers"].as_u64().expect("signers") >= 3);
    answer["account"]["balance_fen"]
        .as_u64()
        .unwrap_or_else(|| panic!("no balance in {answer}"))
}

fn height_of(sent: &serde_json::Value) -> u64 {
    sent["height"].as_u64().expect("a height")
}

fn cluster(dir: &Path) -> Cluster {
    let node_binary = Path::new(env!("CARGO_BIN_EXE_yuchain")).with_file_name("yuchain-node");
    assert!(
        node_binary.exists(),
        "build yuchain-node first (cargo build -p yuchain-node); the workspace test run does"
    );
    let mut config = ClusterConfig::devnet(dir.join("cluster"), node_binary);
    config.round_timeout_ms = Some(400);
    Cluster::create(config).expect("a cluster")
}

/// Turns TLS on for node `index`'s gateway (a certificate for `localhost`
/// from a CA made here) before it starts; returns the CA's PEM file.
fn serve_tls(cluster: &Cluster, index: usize, dir: &Path) -> PathBuf {
    let ca_key = rcgen::KeyPair::generate().expect("a CA key");
    let mut ca_params = rcgen::CertificateParams::new(Vec::new()).expect("CA params");
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let ca = ca_params.self_signed(&ca_key).expect("a CA certificate");
    let key = rcgen::KeyPair::generate().expect("a key");
    let certificate = rcgen::CertificateParams::new(vec!["localhost".to_string()])
        .expect("params")
        .signed_by(&key, &ca, &ca_key)
        .expect("a certificate");
    let home = &cluster.nodes[index].home;
    std::fs::create_dir_all(home.join("tls")).expect("a tls directory");
    std::fs::write(home.join("tls/gateway.crt"), certificate.pem()).expect("written");
    std::fs::write(home.join("tls/gateway.key"), key.serialize_pem()).expect("written");
    let config = home.join("config.toml");
    let mut text = std::fs::read_to_string(&config).expect("the node's config");
    text.push_str(
        "\n[gateway.tls]\ncertificate = \"tls/gateway.crt\"\nprivate_key = \"tls/gateway.key\"\n",
    );
    std::fs::write(&config, text).expect("config written");
    let ca_path = dir.join("gateway-ca.pem");
    std::fs::write(&ca_path, ca.pem()).expect("written");
    ca_path
}

#[test]
fn every_actor_works_through_the_cli_and_balances_are_proved() {
    let dir = tempfile::tempdir().expect("a temp dir");
    let mut cluster = cluster(dir.path());
    // Node 1's gateway serves TLS (the others, as on the devnet, plaintext).
    let tls_ca = serve_tls(&cluster, 1, dir.path());
    cluster.start_all().expect("started");
    let runtime = tokio::runtime::Runtime::new().expect("a runtime");
    runtime
        .block_on(cluster.wait_height(0, 1, Duration::from_secs(60)))
        .expect("the chain runs");
    let env = Env {
        dir: dir.path().to_path_buf(),
        node: cluster.nodes[0].endpoint(),
        genesis: dir.path().join("cluster/genesis.toml"),
        deadline: Instant::now() + TEST_TIMEOUT,
    };
    let issuer = env.key("issuer", &cluster.authorities.issuer);
    let bank = env.key("bank", &cluster.authorities.operators[0].1);
    let bank_address = cluster.operator_address(0).to_string();

    // The issuer funds the bank; the chain's supply shows it.
    let before = env.json(&["chain", "info"]);
    env.json(&[
        "issuer",
        "issue",
        "--operator",
        &bank_address,
        "--amount",
        "1000.00",
        "--key",
        &issuer,
    ]);
    let info = env.json(&["chain", "info"]);
    let issued = |info: &serde_json::Value| info["issued_fen"].as_u64().expect("issued");
    assert_eq!(issued(&info) - issued(&before), 100_000, "{info}");
    assert_eq!(info["validators"].as_array().map(Vec::len), Some(4));
    // The chain's rules, as genesis set them (the devnet keeps the defaults:
    // class 4 holds at most 10,000 yuan, payments are free).
    let tiers = info["parameters"]["tiers"].as_array().expect("tiers");
    assert_eq!(tiers.len(), 4, "{info}");
    assert_eq!(tiers[3]["tier"], "KYC_TIER_CLASS_4");
    assert_eq!(tiers[3]["balance_max_fen"], 1_000_000);
    assert_eq!(info["parameters"]["fees"]["transfer"]["flat_fen"], 0);
    assert_eq!(info["parameters"]["transaction_bytes_max"], 2_048);

    // The bank opens a personal wallet and a merchant's, and tops up alice.
    let (alice, alice_public, alice_address) = new_key(&env, "alice");
    let (shop, shop_public, _shop_address) = new_key(&env, "shop");
    env.json(&[
        "operator",
        "register",
        "--public-key",
        &alice_public,
        "--tier",
        "2",
        "--key",
        &bank,
    ]);
    env.json(&[
        "operator",
        "register",
        "--public-key",
        &shop_public,
        "--merchant",
        "catering",
        "--key",
        &bank,
    ]);
    let top_up = env.json(&[
        "wallet",
        "pay",
        "--to",
        &alice_address,
        "--amount",
        "100.00",
        "--key",
        &bank,
    ]);
    assert_eq!(balance_fen(&env, &alice, height_of(&top_up)), 10_000);

    // The merchant charges; alice pays the request; the merchant refunds
    // part of it and lists the payment.
    let request = env.json(&[
        "merchant",
        "charge",
        "--amount",
        "12.34",
        "--order",
        "A-1 午饭",
        "--key",
        &shop,
    ]);
    let request = request["request"].as_str().expect("a request").to_string();
    let paid = env.json(&["wallet", "pay", "--request", &request, "--key", &alice]);
    let payment = paid["tx_id"].as_str().expect("an id").to_string();
    let refund = env.json(&[
        "merchant",
        "refund",
        "--payment",
        &payment,
        "--amount",
        "2.34",
        "--key",
        &shop,
    ]);
    assert_eq!(balance_fen(&env, &alice, height_of(&refund)), 9_000);
    let payments = env.json(&["merchant", "payments", "--key", &shop]);
    assert_eq!(
        payments["payments"][0]["payment_id"],
        payment.as_str(),
        "{payments}"
    );
    assert_eq!(payments["payments"][0]["order"], "A-1 午饭");
    assert_eq!(payments["payments"][0]["amount_fen"], 1_234);
    // Proved against the certificate (the balance check above waited for
    // the refund's height to be certified), refund included.
    assert_eq!(payments["payments"][0]["proved"], true, "{payments}");
    assert_eq!(payments["payments"][0]["refunded_fen"], 234);
    let proved = env.json(&[
        "merchant",
        "payment",
        &payment,
        "--min-height",
        &height_of(&refund).to_string(),
        "--key",
        &shop,
    ]);
    assert_eq!(proved["found"], true, "{proved}");
    assert_eq!(proved["amount_fen"], 1_234);
    assert_eq!(proved["refunded_fen"], 234);
    assert_eq!(proved["to_this_merchant"], true);
    assert_eq!(proved["pinned"], true);
    assert!(proved["signers"].as_u64().expect("signers") >= 3);
    let unknown = env.json(&["merchant", "payment", &"ab".repeat(32)]);
    assert_eq!(unknown["found"], false, "{unknown}");

    // Frozen, alice cannot pay (the receipt says why, and the exit code is
    // not 0); unfrozen, she can.
    env.json(&["operator", "freeze", &alice_address, "--key", &bank]);
    let refused = env.fails(&[
        "wallet",
        "pay",
        "--to",
        &bank_address,
        "--amount",
        "1.00",
        "--key",
        &alice,
    ]);
    assert!(refused.contains("FROZEN"), "{refused}");
    env.json(&["operator", "unfreeze", &alice_address, "--key", &bank]);

    // A lost phone: the bank rotates her key; the old one no longer signs,
    // the new one signs for the same address.
    let (alice2, alice2_public, _) = new_key(&env, "alice2");
    env.json(&[
        "operator",
        "rotate-key",
        &alice_address,
        "--new-public-key",
        &alice2_public,
        "--key",
        &bank,
    ]);
    let old_key = env.fails(&[
        "wallet",
        "pay",
        "--to",
        &bank_address,
        "--amount",
        "1.00",
        "--key",
        &alice,
    ]);
    assert!(!old_key.is_empty());
    let paid = env.json(&[
        "wallet",
        "pay",
        "--to",
        &bank_address,
        "--amount",
        "1.00",
        "--key",
        &alice2,
        "--sender",
        &alice_address,
    ]);
    let answer = env.json(&[
        "wallet",
        "balance",
        &alice_address,
        "--min-height",
        &height_of(&paid).to_string(),
    ]);
    assert_eq!(answer["account"]["balance_fen"], 8_900, "{answer}");

    // History, newest first, with every payment of hers.
    let history = env.json(&["wallet", "history", &alice_address, "--limit", "3"]);
    let entries = history["entries"].as_array().expect("entries");
    assert_eq!(entries.len(), 3, "{history}");
    assert_eq!(entries[0]["tx_id"], paid["tx_id"]);
    let next = history["next_page"].as_str().expect("a token").to_string();
    assert!(!next.is_empty(), "more entries follow");
    let older = env.json(&["wallet", "history", &alice_address, "--page", &next]);
    let all = entries.len() + older["entries"].as_array().map_or(0, Vec::len);
    assert!(
        all >= 7,
        "registration, top-up, payment, refund, freeze, unfreeze, rotation, payment: {older}"
    );

    // A saved answer checks offline; one tampered byte makes it fail.
    let saved = dir.path().join("answer.pb");
    env.ok(&[
        "wallet",
        "balance",
        &alice_address,
        "--save",
        &saved.display().to_string(),
    ]);
    let checked = env.json(&[
        "wallet",
        "verify-proof",
        &saved.display().to_string(),
        "--address",
        &alice_address,
    ]);
    assert_eq!(checked["valid"], true);
    let bytes = std::fs::read(&saved).expect("saved");
    let honest = pb::GetAccountResponse::decode(bytes.as_slice()).expect("an answer");
    let mut richer = honest.clone();
    if let Some(account) = richer.account.as_mut() {
        account.balance += 100_000;
    }
    let mut forged = honest.clone();
    let last = forged.certified.len() - 1;
    forged.certified[last - 10] ^= 0x01;
    for (what, answer) in [
        ("a richer balance", richer),
        ("a forged certificate", forged),
    ] {
        std::fs::write(&saved, answer.encode_to_vec()).expect("written");
        let tampered = env.fails(&[
            "wallet",
            "verify-proof",
            &saved.display().to_string(),
            "--address",
            &alice_address,
        ]);
        assert!(
            tampered.contains("does not check out"),
            "{what}: {tampered}"
        );
    }

    // A transaction's status by id, and errors that say what to do.
    let tx = env.json(&["wallet", "tx", paid["tx_id"].as_str().expect("id")]);
    assert_eq!(tx["status"], "COMMITTED");
    let bad_amount = env.fails(&[
        "wallet",
        "pay",
        "--to",
        &bank_address,
        "--amount",
        "1.005",
        "--key",
        &alice2,
    ]);
    assert!(bad_amount.contains("not an amount"), "{bad_amount}");
    let no_key = env.fails(&["wallet", "pay", "--to", &bank_address, "--amount", "1"]);
    assert!(no_key.contains("--key"), "{no_key}");
    // Blocks as they come, from genesis, in order.
    let watched = env.ok(&["chain", "watch", "--from", "0", "--count", "3", "--json"]);
    let heights: Vec<u64> = watched
        .lines()
        .map(|line| {
            let block: serde_json::Value = serde_json::from_str(line).expect("a JSON line");
            block["height"].as_u64().expect("a height")
        })
        .collect();
    assert_eq!(heights, vec![0, 1, 2]);

    let completions = env.ok(&["completions", "bash"]);
    assert!(completions.contains("yuchain") && completions.contains("verify-proof"));
    let unreachable = Command::new(env!("CARGO_BIN_EXE_yuchain"))
        .args(["chain", "info", "--node", "http://127.0.0.1:1"])
        .env("YUCHAIN_PROFILE", dir.path().join("none.toml"))
        .output()
        .expect("runs");
    assert!(!unreachable.status.success());
    assert!(String::from_utf8_lossy(&unreachable.stderr).contains("cannot reach the node"));

    // Over TLS: the CA given, the same proved balance; plaintext or an
    // untrusted certificate is refused with what to check.
    let tls_node = format!("https://localhost:{}", cluster.nodes[1].gateway.port());
    let tls_ca = tls_ca.display().to_string();
    let over_tls = |extra: &[&str]| {
        let mut command = Command::new(env!("CARGO_BIN_EXE_yuchain"));
        command
            .args(["wallet", "balance", "--key", &alice2, "--json"])
            .arg("--genesis")
            .arg(&env.genesis)
            .args(extra)
            .env("YUCHAIN_PROFILE", dir.path().join("none.toml"));
        command.output().expect("runs")
    };
    let served = over_tls(&["--node", &tls_node, "--tls-ca", &tls_ca]);
    let stdout = String::from_utf8_lossy(&served.stdout);
    assert!(
        served.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&served.stderr)
    );
    let answer: serde_json::Value = serde_json::from_str(&stdout).expect("JSON");
    assert_eq!(answer["pinned"], true, "{answer}");
    let by_ip = format!("https://127.0.0.1:{}", cluster.nodes[1].gateway.port());
    let served = over_tls(&[
        "--node",
        &by_ip,
        "--tls-ca",
        &tls_ca,
        "--tls-domain",
        "localhost",
    ]);
    assert!(served.status.success(), "by IP with --tls-domain");
    let plaintext = over_tls(&[
        "--node",
        &format!("http://127.0.0.1:{}", cluster.nodes[1].gateway.port()),
    ]);
    assert!(!plaintext.status.success(), "plaintext to a TLS gateway");
    assert!(
        String::from_utf8_lossy(&plaintext.stderr).contains("https://"),
        "the error says to use https://: {}",
        String::from_utf8_lossy(&plaintext.stderr)
    );
    let untrusted = over_tls(&["--node", &tls_node]);
    assert!(
        !untrusted.status.success(),
        "a certificate of an unknown CA"
    );
    assert!(
        String::from_utf8_lossy(&untrusted.stderr).contains("--tls-ca"),
        "the error says what to check: {}",
        String::from_utf8_lossy(&untrusted.stderr)
    );
    let mixed = over_tls(&["--node", &env.node, "--tls-ca", &tls_ca]);
    assert!(!mixed.status.success(), "TLS settings with an http:// URL");

    cluster.stop_all(Duration::from_secs(20)).expect("stopped");
}
