//! Multi-process tests: real `yuchain-node` processes on loopback, free
//! ports, temporary homes, each test bounded in time. The cluster owns its
//! processes and kills any left when it is dropped (also when a test
//! fails), and the nodes stop by themselves if the test process dies.

use std::time::Duration;

use anyhow::{Context as _, Result, bail};
use yuchain_cli::cluster::{Cluster, ClusterConfig};
use yuchain_cli::load::{self, Outcome, Wallets};
use yuchain_proto::pb::{self, transaction_body::Action};
use yuchain_proto::{Hash32, pb::ResultCode};

/// Every test finishes within this, or fails.
const TEST_TIMEOUT: Duration = Duration::from_secs(240);
/// How long a node gets to reach a height.
const CATCH_UP: Duration = Duration::from_secs(60);

fn cluster(dir: &std::path::Path, validators: usize, observers: usize) -> Result<Cluster> {
    let mut config =
        ClusterConfig::devnet(dir.to_path_buf(), env!("CARGO_BIN_EXE_yuchain-node").into());
    config.validators = validators;
    config.observers = observers;
    config.round_timeout_ms = Some(400);
    Cluster::create(config)
}

/// A cluster made in `dir`, started, every node past its first block.
async fn running(dir: &std::path::Path, validators: usize, observers: usize) -> Result<Cluster> {
    let mut cluster = cluster(dir, validators, observers)?;
    cluster.start_all()?;
    for index in 0..validators + observers {
        cluster.wait_height(index, 1, CATCH_UP).await?;
    }
    Ok(cluster)
}

/// Runs `test` on a fresh runtime under [`TEST_TIMEOUT`]; on failure,
/// prints the end of every node's log in `dir` first.
fn bounded<F: std::future::Future<Output = Result<()>>>(dir: &std::path::Path, test: F) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    let outcome = runtime.block_on(async { tokio::time::timeout(TEST_TIMEOUT, test).await });
    let failure = match outcome {
        Ok(Ok(())) => return,
        Ok(Err(error)) => format!("{error:#}"),
        Err(_) => format!("the test did not finish within {TEST_TIMEOUT:?}"),
    };
    if let Ok(entries) = std::fs::read_dir(dir) {
        for entry in entries.flatten() {
            let path = entry.path();
            if path.extension().is_some_and(|ext| ext == "log") {
                let text = std::fs::read_to_string(&path).unwrap_or_default();
                let lines: Vec<&str> = text.lines().collect();
                // A node that stopped says why on an `Error:` line, above
                // its backtrace.
                for line in lines.iter().filter(|line| line.starts_with("Error")) {
                    eprintln!("==== {}: {line}", path.display());
                }
                eprintln!("==== {} (last 40 lines)", path.display());
                for line in &lines[lines.len().saturating_sub(40)..] {
                    eprintln!("{line}");
                }
            }
        }
    }
    panic!("{failure}");
}

/// Pays `count` payments from the wallets through node `via`, each waited
/// for; returns the ids of those committed OK (all of them, or an error).
async fn pay(
    cluster: &Cluster,
    wallets: &mut Wallets,
    via: usize,
    count: usize,
) -> Result<Vec<Hash32>> {
    let mut client = cluster.client(via, Duration::from_secs(10)).await?;
    let mut ids = Vec::new();
    let accounts = wallets.accounts.len();
    for index in 0..count {
        let from = index % accounts;
        let to = wallets.accounts[(from + 1) % accounts].address;
        let transaction = wallets.accounts[from].sign(
            &wallets.chain_id,
            wallets.expiry_height,
            Action::Transfer(pb::Transfer {
                to: to.0.to_vec(),
                amount: 100,
                memo: format!("payment {index}"),
            }),
        );
        let (id, outcome) = load::submit(&mut client, transaction).await;
        match outcome {
            Outcome::Committed {
                code: ResultCode::Ok,
                ..
            } => {
                wallets.accounts[from].sequence += 1;
                ids.push(id);
            }
            other => bail!("payment {index} through node {via} ended {other:?}"),
        }
    }
    Ok(ids)
}

/// Checks that every running node in `nodes` holds each payment, committed
/// OK. A node that has not executed it yet gets a few seconds (the commit
/// reported by one node reaches the others a moment later), never more.
async fn present_everywhere(cluster: &Cluster, nodes: &[usize], ids: &[Hash32]) -> Result<()> {
    for &index in nodes {
        let mut client = cluster.client(index, Duration::from_secs(10)).await?;
        for id in ids {
            let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
            let response = loop {
                let response = client
                    .get_transaction(pb::GetTransactionRequest {
                        tx_id: id.0.to_vec(),
                    })
                    .await?
                    .into_inner();
                let not_yet = matches!(
                    response.status(),
                    pb::TransactionStatus::Unknown | pb::TransactionStatus::Pending
                );
                if !not_yet || tokio::time::Instant::now() >= deadline {
                    break response;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            };
            if response.status() != pb::TransactionStatus::Committed
                || response.receipt.as_ref().map(|r| r.code()) != Some(ResultCode::Ok)
            {
                bail!(
                    "{} does not hold committed payment {id}: {:?}",
                    cluster.nodes[index].name,
                    response.status()
                );
            }
        }
    }
    Ok(())
}

/// Waits until every node in `nodes` reaches the highest height among them,
/// then checks they hold the same block and state root there.
async fn agree(cluster: &Cluster, nodes: &[usize]) -> Result<u64> {
    let mut height = 0;
    for &index in nodes {
        height = height.max(cluster.chain_info(index).await?.height);
    }
    let mut first: Option<pb::GetBlockResponse> = None;
    for &index in nodes {
        cluster.wait_height(index, height, CATCH_UP).await?;
        let mut client = cluster.client(index, Duration::from_secs(5)).await?;
        let mut block = client
            .get_block(pb::GetBlockRequest { height })
            .await?
            .into_inner();
        // The same block, header and state; the certificate that made it
        // final may differ between nodes (a node that synced it holds the
        // one it was sent), so only the consensus block itself is compared.
        if !block.certified.is_empty() {
            block.certified = yuchain_consensus::CommittedBlock::decode(&block.certified)
                .map_err(|error| anyhow::anyhow!("a stored block: {error}"))?
                .block
                .hash()
                .0
                .to_vec();
        }
        match &first {
            None => first = Some(block),
            Some(expected) => {
                if block != *expected {
                    bail!(
                        "{} holds another block or state at height {height}",
                        cluster.nodes[index].name
                    );
                }
            }
        }
    }
    Ok(height)
}

/// Heights of `nodes` now.
async fn heights(cluster: &Cluster, nodes: &[usize]) -> Result<Vec<u64>> {
    let mut out = Vec::new();
    for &index in nodes {
        out.push(cluster.chain_info(index).await?.height);
    }
    Ok(out)
}

#[test]
fn validators_agree_survive_a_crash_and_a_wiped_node_resyncs_from_genesis() {
    let dir = tempfile::tempdir().expect("tempdir");
    bounded(dir.path(), async {
        let mut cluster = running(dir.path(), 4, 0).await?;
        let mut wallets = load::fund_wallets(&cluster, 6).await?;
        let mut committed = pay(&cluster, &mut wallets, 0, 6).await?;
        agree(&cluster, &[0, 1, 2, 3])
            .await
            .context("all four agree")?;
        present_everywhere(&cluster, &[0, 1, 2, 3], &committed).await?;

        // kill -9 of one validator: the other three keep committing.
        cluster.kill(3)?;
        let before = heights(&cluster, &[0, 1, 2]).await?;
        committed.extend(pay(&cluster, &mut wallets, 1, 6).await?);
        let after = heights(&cluster, &[0, 1, 2]).await?;
        assert!(
            after.iter().zip(&before).all(|(a, b)| a > b),
            "commits go on without the crashed validator: {before:?} -> {after:?}"
        );
        // Restarted, it catches up to the same root.
        cluster.start(3)?;
        agree(&cluster, &[0, 1, 2, 3])
            .await
            .context("the restarted node caught up")?;
        present_everywhere(&cluster, &[3], &committed).await?;

        // Wiped (its block database deleted, keys and safety record kept), it
        // re-syncs the whole chain from genesis and re-executes it.
        let grace = Duration::from_secs(20);
        let status = cluster.stop(2, grace)?.context("node 2 was running")?;
        assert!(
            status.success(),
            "a graceful stop exits cleanly: {status:?}"
        );
        cluster.wipe(2)?;
        committed.extend(pay(&cluster, &mut wallets, 0, 3).await?);
        cluster.start(2)?;
        agree(&cluster, &[0, 1, 2, 3])
            .await
            .context("the wiped node re-synced")?;
        present_everywhere(&cluster, &[0, 1, 2, 3], &committed).await?;
        cluster.stop_all(grace)?;
        for index in 0..4 {
            assert!(!cluster.is_running(index));
            // Voted blocks leave the safety record once their height is
            // durable: it holds a few, not one per block of the chain.
            // (Read through the store: the file holds two slots, and a
            // slot may keep an older, longer record's tail after its own.)
            let record =
                yuchain_storage::FileSafetyStore::open(cluster.nodes[index].home.join("safety"))?;
            let voted = yuchain_storage::SafetyStore::safety_keys(&record)?
                .iter()
                .filter(|key| key.starts_with(b"consensus/block/"))
                .count();
            assert!(
                voted <= 16,
                "{voted} voted blocks kept in the safety record"
            );
        }
        Ok(())
    });
}

#[test]
fn with_two_of_four_stopped_nothing_commits_and_nothing_forks_until_one_returns() {
    let dir = tempfile::tempdir().expect("tempdir");
    bounded(dir.path(), async {
        let mut cluster = running(dir.path(), 4, 0).await?;
        let mut wallets = load::fund_wallets(&cluster, 4).await?;
        let mut committed = pay(&cluster, &mut wallets, 0, 2).await?;
        let grace = Duration::from_secs(20);
        // Both at once, by SIGKILL: what they acknowledged must survive.
        cluster.kill(2)?;
        cluster.kill(3)?;
        // In flight while only two of four run: at most the blocks already
        // certified can still commit, then nothing.
        tokio::time::sleep(Duration::from_secs(2)).await;
        let stalled = heights(&cluster, &[0, 1]).await?;
        let mut client = cluster.client(0, Duration::from_secs(5)).await?;
        let from = 0;
        let to = wallets.accounts[1].address;
        let transaction = wallets.accounts[from].sign(
            &wallets.chain_id,
            wallets.expiry_height,
            Action::Transfer(pb::Transfer {
                to: to.0.to_vec(),
                amount: 100,
                memo: "during the outage".into(),
            }),
        );
        let id = yuchain_proto::tx::tx_id(&transaction.body, &transaction.signature);
        let response = client
            .submit_transaction(pb::SubmitTransactionRequest {
                transaction: Some(transaction),
                wait_for_commit: true,
                wait_timeout_ms: 3_000,
            })
            .await?
            .into_inner();
        assert_eq!(
            response.status(),
            pb::TransactionStatus::Pending,
            "no quorum, no commit"
        );
        let later = heights(&cluster, &[0, 1]).await?;
        assert_eq!(stalled, later, "no block commits without a quorum");
        // One comes back: commits resume, the waiting payment included.
        cluster.start(2)?;
        let resumed = stalled.iter().max().copied().unwrap_or(0) + 1;
        for index in [0, 1, 2] {
            cluster.wait_height(index, resumed, CATCH_UP).await?;
        }
        let deadline = std::time::Instant::now() + CATCH_UP;
        loop {
            let status = client
                .get_transaction(pb::GetTransactionRequest {
                    tx_id: id.0.to_vec(),
                })
                .await?
                .into_inner()
                .status();
            if status == pb::TransactionStatus::Committed {
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "the waiting payment commits"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        wallets.accounts[from].sequence += 1;
        committed.push(id);
        committed.extend(pay(&cluster, &mut wallets, 2, 2).await?);
        agree(&cluster, &[0, 1, 2]).await?;
        cluster.start(3)?;
        agree(&cluster, &[0, 1, 2, 3]).await?;
        present_everywhere(&cluster, &[0, 1, 2, 3], &committed).await?;
        cluster.stop_all(grace)?;
        Ok(())
    });
}

#[test]
fn an_observer_follows_and_never_votes_and_an_unknown_peer_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    bounded(dir.path(), async {
        // Four validators and one configured observer.
        let mut cluster = cluster(dir.path(), 4, 1)?;
        let observer = 4;
        let safety = cluster.nodes[observer].home.join("safety");
        let safety_before = std::fs::read(&safety)?;
        cluster.start_all()?;
        for index in 0..5 {
            cluster.wait_height(index, 1, CATCH_UP).await?;
        }
        let mut wallets = load::fund_wallets(&cluster, 4).await?;
        let committed = pay(&cluster, &mut wallets, 1, 4).await?;
        agree(&cluster, &[0, 1, 2, 3, observer]).await?;
        present_everywhere(&cluster, &[observer], &committed).await?;
        assert_eq!(
            std::fs::read(&safety)?,
            safety_before,
            "an observer never writes a safety record: it never votes"
        );
        let mut client = cluster.client(observer, Duration::from_secs(5)).await?;
        let transaction = wallets.accounts[0].sign(
            &wallets.chain_id,
            wallets.expiry_height,
            Action::Transfer(pb::Transfer {
                to: wallets.accounts[1].address.0.to_vec(),
                amount: 1,
                memo: String::new(),
            }),
        );
        let refused = client
            .submit_transaction(pb::SubmitTransactionRequest {
                transaction: Some(transaction),
                wait_for_commit: false,
                wait_timeout_ms: 0,
            })
            .await
            .expect_err("an observer admits nothing");
        assert_eq!(load::reason_of(&refused), "NOT_A_VALIDATOR");

        // A node with a key no validator knows: refused at connection, so it
        // never gets a block.
        let stranger = dir.path().join("stranger");
        let binary = env!("CARGO_BIN_EXE_yuchain-node");
        let free = std::net::TcpListener::bind("127.0.0.1:0")?;
        let ports: Vec<u16> = (0..3)
            .map(|_| {
                std::net::TcpListener::bind("127.0.0.1:0").map(|l| l.local_addr().map(|a| a.port()))
            })
            .collect::<std::io::Result<std::io::Result<Vec<_>>>>()??;
        drop(free);
        let init = std::process::Command::new(binary)
            .args(["init", "--observer", "--name", "stranger", "--home"])
            .arg(&stranger)
            .args(["--address", &format!("127.0.0.1:{}", ports[0])])
            .args(["--gateway-listen", &format!("127.0.0.1:{}", ports[1])])
            .args(["--metrics-listen", &format!("127.0.0.1:{}", ports[2])])
            .output()?;
        assert!(
            init.status.success(),
            "{}",
            String::from_utf8_lossy(&init.stderr)
        );
        std::fs::copy(
            dir.path().join("genesis.toml"),
            stranger.join("genesis.toml"),
        )?;
        let log = std::fs::File::create(dir.path().join("stranger.log"))?;
        let mut child = ChildGuard(
            std::process::Command::new(binary)
                .args(["run", "--home"])
                .arg(&stranger)
                .env("YUCHAIN_EXIT_WITH_PARENT", "1")
                .stdout(log.try_clone()?)
                .stderr(log)
                .spawn()?,
        );
        tokio::time::sleep(Duration::from_secs(4)).await;
        let metrics = yuchain_cli::metrics_text(&format!("127.0.0.1:{}", ports[2]).parse()?)
            .await
            .context("the stranger's metrics")?;
        let gauge = |name: &str| metric_value(&metrics, name);
        assert_eq!(gauge("yuchain_peers"), Some(0), "no validator accepts it");
        assert_eq!(gauge("yuchain_height"), Some(0), "it never gets a block");
        assert!(cluster.chain_info(0).await?.height > 1);
        // The validators count what they refused, and what they carried.
        let validator_metrics = yuchain_cli::metrics_text(&cluster.nodes[0].metrics)
            .await
            .context("validator 0's metrics")?;
        let counter = |name: &str| metric_value(&validator_metrics, name);
        assert!(
            counter("yuchain_network_refused_connections_total").is_some_and(|count| count > 0),
            "the stranger's connection is counted as refused"
        );
        assert!(
            counter(r#"yuchain_network_messages_total{lane="consensus",direction="in"}"#)
                .is_some_and(|count| count > 0),
            "consensus messages are counted"
        );
        assert_eq!(
            counter(r#"yuchain_network_dropped_total{lane="consensus",reason="rate_limited"}"#),
            Some(0)
        );
        let _ = child.0.kill();
        let _ = child.0.wait();
        cluster.stop_all(Duration::from_secs(20))?;
        Ok(())
    });
}

/// The value of metric `name` (with its labels, as printed) in a
/// Prometheus text exposition.
fn metric_value(text: &str, name: &str) -> Option<u64> {
    text.lines()
        .find_map(|line| line.strip_prefix(&format!("{name} ")))
        .and_then(|value| value.trim().parse::<u64>().ok())
}

/// Kills the child when dropped (a failing assertion must not leave it).
struct ChildGuard(std::process::Child);

impl Drop for ChildGuard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn a_validator_restarted_in_the_first_blocks_catches_up() {
    // The first blocks certify genesis as the executed state; a node that
    // restarts among them must still know genesis's state to check them.
    let dir = tempfile::tempdir().expect("tempdir");
    bounded(dir.path(), async {
        let mut cluster = cluster(dir.path(), 4, 0)?;
        cluster.start_all()?;
        cluster.wait_height(3, 1, CATCH_UP).await?;
        cluster.kill(3)?;
        cluster.start(3)?;
        agree(&cluster, &[0, 1, 2, 3])
            .await
            .context("the restarted node caught up")?;
        assert!(cluster.is_running(3), "it is still running");
        cluster.stop_all(Duration::from_secs(20))?;
        Ok(())
    });
}

#[test]
fn a_hostile_client_gets_errors_and_the_chain_keeps_committing() {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let dir = tempfile::tempdir().expect("tempdir");
    bounded(dir.path(), async {
        let cluster = running(dir.path(), 4, 0).await?;
        let mut wallets = load::fund_wallets(&cluster, 4).await?;
        let gateway = cluster.nodes[0].gateway;

        // Garbage on the gateway port: the connection is dropped, nothing
        // else happens.
        for round in 0u8..3 {
            let mut socket = tokio::net::TcpStream::connect(gateway).await?;
            let garbage: Vec<u8> = (0..65_536u32)
                .map(|i| (i as u8).wrapping_mul(31).wrapping_add(round))
                .collect();
            let _ = socket.write_all(&garbage).await;
            let mut sink = Vec::new();
            let read =
                tokio::time::timeout(Duration::from_secs(10), socket.read_to_end(&mut sink)).await;
            if read.is_err() {
                bail!("the gateway kept a garbage connection open");
            }
        }

        // A request over the size limit: OUT_OF_RANGE, and the same
        // connection keeps serving.
        let mut client = cluster.client(0, Duration::from_secs(10)).await?;
        let huge = pb::SignedTransaction {
            body: vec![7; 2 << 20],
            signature: vec![1; 64],
        };
        let status = client
            .submit_transaction(pb::SubmitTransactionRequest {
                transaction: Some(huge),
                wait_for_commit: false,
                wait_timeout_ms: 0,
            })
            .await
            .expect_err("refused");
        if status.code() != tonic::Code::OutOfRange {
            bail!("an oversized request got {status:?}");
        }
        // A well-formed request of nonsense: a clear INVALID_ARGUMENT.
        let status = client
            .submit_transaction(pb::SubmitTransactionRequest {
                transaction: Some(pb::SignedTransaction {
                    body: vec![0xff; 100],
                    signature: vec![0; 64],
                }),
                wait_for_commit: false,
                wait_timeout_ms: 0,
            })
            .await
            .expect_err("refused");
        if status.code() != tonic::Code::InvalidArgument {
            bail!("a garbage transaction got {status:?}");
        }

        // A thousand streams over twenty connections, never read: at most
        // the limit are served, the rest refused with RESOURCE_EXHAUSTED.
        let mut open = Vec::new();
        let mut refused = 0;
        for _ in 0..20 {
            let mut client = cluster.client(0, Duration::from_secs(10)).await?;
            for _ in 0..50 {
                match client
                    .stream_blocks(pb::StreamBlocksRequest { from_height: 0 })
                    .await
                {
                    Ok(stream) => open.push(stream.into_inner()),
                    Err(status) if status.code() == tonic::Code::ResourceExhausted => {
                        refused += 1;
                    }
                    Err(status) => bail!("a stream got {status:?}"),
                }
            }
        }
        if open.len() > yuchain_gateway::STREAMS_MAX_DEFAULT || refused == 0 {
            bail!("{} streams served, {refused} refused", open.len());
        }

        // Meanwhile payments through that node commit, and every node
        // keeps up.
        let before = heights(&cluster, &[0, 1, 2, 3]).await?;
        let ids = pay(&cluster, &mut wallets, 0, 4).await?;
        present_everywhere(&cluster, &[0, 1, 2, 3], &ids).await?;
        let after = heights(&cluster, &[0, 1, 2, 3]).await?;
        if !after.iter().zip(&before).all(|(a, b)| a > b) {
            bail!("commits stalled under the hostile client: {before:?} -> {after:?}");
        }
        drop(open);
        agree(&cluster, &[0, 1, 2, 3]).await?;
        Ok(())
    });
}

#[test]
fn a_lone_payment_commits_everywhere_without_waiting_for_the_next_payload() {
    // With a long empty-block wait, a leader whose parent or grandparent
    // ordered batches must still propose at once: the other nodes learn of
    // the commit only from the certificate its proposal carries. (It used
    // to wait, and every node but the leader answered its clients a whole
    // wait late.) Nor does a lone payment wait for the batch interval.
    const WAIT_MS: u64 = 2_500;
    const BATCH_INTERVAL_MS: u64 = 5_000;
    let dir = tempfile::tempdir().expect("tempdir");
    bounded(dir.path(), async {
        let mut config = ClusterConfig::devnet(
            dir.path().to_path_buf(),
            env!("CARGO_BIN_EXE_yuchain-node").into(),
        );
        config.round_timeout_ms = Some(4_000);
        let mut cluster = Cluster::create(config)?;
        for node in &cluster.nodes {
            let path = node.home.join("config.toml");
            let text = std::fs::read_to_string(&path)?;
            // The cluster sets a fifth of the round timeout.
            let changed = text.replacen(
                "empty_block_wait_ms = 800",
                &format!("empty_block_wait_ms = {WAIT_MS}"),
                1,
            );
            if changed == text {
                bail!("no empty_block_wait_ms in {}", path.display());
            }
            // And a long batch interval: a node with no batch on its way
            // cuts one at once, it does not wait for the interval.
            let text = changed;
            let changed = text.replacen(
                "\ninterval_ms = 50\n",
                &format!("\ninterval_ms = {BATCH_INTERVAL_MS}\n"),
                1,
            );
            if changed == text {
                bail!("no batches.interval_ms in {}", path.display());
            }
            std::fs::write(&path, changed)?;
        }
        cluster.start_all()?;
        for index in 0..4 {
            cluster.wait_height(index, 1, CATCH_UP).await?;
        }
        let mut wallets = load::fund_wallets(&cluster, 2).await?;
        // One payment at a time through each gateway: each is answered (so
        // durable on that node) well inside one empty-block wait.
        for via in 0..4 {
            let mut client = cluster.client(via, Duration::from_secs(10)).await?;
            let to = wallets.accounts[1].address;
            let transaction = wallets.accounts[0].sign(
                &wallets.chain_id,
                wallets.expiry_height,
                Action::Transfer(pb::Transfer {
                    to: to.0.to_vec(),
                    amount: 1,
                    memo: String::new(),
                }),
            );
            match load::submit(&mut client, transaction).await {
                (
                    _,
                    Outcome::Committed {
                        code: ResultCode::Ok,
                        latency,
                        ..
                    },
                ) => {
                    wallets.accounts[0].sequence += 1;
                    if latency >= Duration::from_millis(WAIT_MS * 3 / 5) {
                        bail!(
                            "through node {via} a lone payment took {latency:?}, about the \
                             {WAIT_MS} ms empty-block wait or the {BATCH_INTERVAL_MS} ms batch \
                             interval"
                        );
                    }
                }
                (_, other) => bail!("a payment through node {via} ended {other:?}"),
            }
        }
        Ok(())
    });
}
