//! A local cluster of real `yuchain-node` processes on loopback: homes,
//! keys and a genesis made with the node's own commands (the same ceremony
//! operators run across machines), free ports, one log file per node.
//!
//! The cluster owns its child processes and stops them by the handle it
//! holds (SIGTERM, then SIGKILL after a grace period); dropping it kills any
//! still running, so a failing test leaves nothing behind.

use std::fs::OpenOptions;
use std::net::{IpAddr, SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail, ensure};
use tonic::transport::Channel;
use yuchain_gateway::WalletGatewayClient;
use yuchain_proto::{Address, SigningKey, pb};

/// The validators' names on a 4-node devnet: the city treasury and three
/// banks.
pub const DEVNET_NAMES: [&str; 4] = [
    "city-treasury",
    "bank-of-chongqing",
    "chongqing-rural-commercial-bank",
    "chongqing-three-gorges-bank",
];

/// How to make a cluster.
#[derive(Clone, Debug)]
pub struct ClusterConfig {
    /// Where the homes, keys, genesis and logs go.
    pub dir: PathBuf,
    /// The `yuchain-node` binary.
    pub node_binary: PathBuf,
    /// How many validators.
    pub validators: usize,
    /// How many observers.
    pub observers: usize,
    /// The chain id.
    pub chain_id: String,
    /// The consensus round timeout, if not the default.
    pub round_timeout_ms: Option<u64>,
    /// Where each node runs, if not all on loopback (one entry per node,
    /// validators first); `None` is loopback, the default.
    pub placement: Option<Vec<NodePlacement>>,
    /// Wallets funded at genesis for a benchmark (keys derived from a seed).
    pub load_test: Option<LoadTestGenesis>,
}

/// Where one node of a cluster runs: the host it listens on (p2p, gateway,
/// metrics) and the command its `run` is started under, e.g.
/// `["ip", "netns", "exec", "yuns-n0"]` for a network namespace.
#[derive(Clone, Debug)]
pub struct NodePlacement {
    /// The address the node listens on and peers dial.
    pub host: IpAddr,
    /// Prepended to `yuchain-node run ...` (empty: run it directly).
    pub command_prefix: Vec<String>,
}

/// Benchmark wallets funded at genesis: `yuchain-node genesis
/// --load-test-wallets`.
#[derive(Clone, Debug)]
pub struct LoadTestGenesis {
    /// How many.
    pub count: u64,
    /// The key seed.
    pub seed: [u8; 32],
    /// Each one's balance, in fen.
    pub balance: u64,
}

impl ClusterConfig {
    /// A 4-validator devnet in `dir`.
    pub fn devnet(dir: PathBuf, node_binary: PathBuf) -> ClusterConfig {
        ClusterConfig {
            dir,
            node_binary,
            validators: 4,
            observers: 0,
            chain_id: "yuchain-devnet".into(),
            round_timeout_ms: None,
            placement: None,
            load_test: None,
        }
    }
}

/// One node of the cluster.
#[derive(Debug)]
pub struct Node {
    /// Its name.
    pub name: String,
    /// Its home.
    pub home: PathBuf,
    /// Its peer-to-peer address.
    pub p2p: SocketAddr,
    /// Its gateway address.
    pub gateway: SocketAddr,
    /// Its metrics address.
    pub metrics: SocketAddr,
    /// Whether it is an observer.
    pub observer: bool,
    /// Its log file (appended to by every start).
    pub log: PathBuf,
    child: Option<Child>,
}

impl Node {
    /// The gateway's URL.
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.gateway)
    }
}

/// The ledger keys of the chain's authorities.
#[derive(Debug)]
pub struct Authorities {
    /// The issuer (city treasury).
    pub issuer: SigningKey,
    /// The operators (banks), with their names.
    pub operators: Vec<(String, SigningKey)>,
}

/// A running (or stopped) cluster.
#[derive(Debug)]
pub struct Cluster {
    /// How it was made.
    pub config: ClusterConfig,
    /// Its nodes: validators first, then observers.
    pub nodes: Vec<Node>,
    /// The issuer's and operators' keys.
    pub authorities: Authorities,
}

/// Free loopback ports, held open until all are chosen so none repeats.
fn free_ports(count: usize) -> Result<Vec<u16>> {
    let listeners = (0..count)
        .map(|_| TcpListener::bind("127.0.0.1:0"))
        .collect::<std::io::Result<Vec<_>>>()
        .context("finding free loopback ports")?;
    listeners
        .iter()
        .map(|listener| Ok(listener.local_addr()?.port()))
        .collect()
}

impl Cluster {
    /// Makes every home, the authorities' keys and the genesis file, with
    /// the node's own `init` and `genesis` commands.
    pub fn create(config: ClusterConfig) -> Result<Cluster> {
        ensure!(config.validators >= 1, "a cluster needs a validator");
        std::fs::create_dir_all(&config.dir)
            .with_context(|| format!("creating {}", config.dir.display()))?;
        let issuer = SigningKey::generate()?;
        let operators: Vec<(String, SigningKey)> = (1..config.validators.max(2))
            .map(|index| {
                let name = if config.validators == 4 {
                    DEVNET_NAMES[index].to_string()
                } else {
                    format!("bank-{index}")
                };
                Ok((name, SigningKey::generate()?))
            })
            .collect::<Result<_>>()?;
        issuer.save_pem(&config.dir.join("issuer.pem"))?;
        for (name, key) in &operators {
            key.save_pem(&config.dir.join(format!("{name}.pem")))?;
        }
        let total = config.validators + config.observers;
        if let Some(placement) = &config.placement {
            ensure!(
                placement.len() == total,
                "a placement for each of the {total} nodes"
            );
        }
        let ports = free_ports(total * 3)?;
        let mut nodes = Vec::with_capacity(total);
        for index in 0..total {
            let observer = index >= config.validators;
            let name = if observer {
                format!("auditor-{}", index - config.validators)
            } else if config.validators == 4 {
                DEVNET_NAMES[index].to_string()
            } else {
                format!("validator-{index}")
            };
            let host = config
                .placement
                .as_ref()
                .map_or(IpAddr::from([127, 0, 0, 1]), |placement| {
                    placement[index].host
                });
            let loopback = |port: u16| SocketAddr::new(host, port);
            let node = Node {
                home: config.dir.join(&name),
                log: config.dir.join(format!("{name}.log")),
                name,
                p2p: loopback(ports[index * 3]),
                gateway: loopback(ports[index * 3 + 1]),
                metrics: loopback(ports[index * 3 + 2]),
                observer,
                child: None,
            };
            init_home(&config.node_binary, &node)?;
            nodes.push(node);
        }
        let genesis = config.dir.join("genesis.toml");
        let mut command = Command::new(&config.node_binary);
        command
            .arg("genesis")
            .arg("--chain-id")
            .arg(&config.chain_id)
            .arg("--issuer-public-key")
            .arg(hex::encode(issuer.public_key().0));
        for (name, key) in &operators {
            command
                .arg("--operator")
                .arg(format!("{name}={}", hex::encode(key.public_key().0)));
        }
        for node in nodes.iter().filter(|node| !node.observer) {
            command
                .arg("--validator-card")
                .arg(node.home.join("validator.toml"));
        }
        if let Some(load_test) = &config.load_test {
            command
                .arg("--load-test-wallets")
                .arg(load_test.count.to_string())
                .arg("--load-test-seed")
                .arg(hex::encode(load_test.seed))
                .arg("--load-test-balance")
                .arg(load_test.balance.to_string());
        }
        command.arg("--out").arg(&genesis);
        run_quietly(&mut command, "yuchain-node genesis")?;
        let observer_keys: Vec<String> = nodes
            .iter()
            .filter(|node| node.observer)
            .map(|node| network_key(&node.home))
            .collect::<Result<_>>()?;
        for node in &nodes {
            std::fs::copy(&genesis, node.home.join("genesis.toml"))
                .context("copying the genesis file")?;
            let path = node.home.join("config.toml");
            let mut text = std::fs::read_to_string(&path)?;
            if !node.observer && !observer_keys.is_empty() {
                let list: Vec<String> =
                    observer_keys.iter().map(|key| format!("{key:?}")).collect();
                text = text.replacen(
                    "observers = []",
                    &format!("observers = [{}]", list.join(", ")),
                    1,
                );
            }
            if let Some(timeout) = config.round_timeout_ms {
                text = text
                    .replacen(
                        "round_timeout_ms = 1000",
                        &format!("round_timeout_ms = {timeout}"),
                        1,
                    )
                    .replacen(
                        "round_timeout_ms_max = 30000",
                        &format!("round_timeout_ms_max = {}", timeout.saturating_mul(8)),
                        1,
                    )
                    .replacen(
                        "empty_block_wait_ms = 200",
                        &format!("empty_block_wait_ms = {}", (timeout / 5).max(10)),
                        1,
                    );
            }
            std::fs::write(&path, text)?;
        }
        Ok(Cluster {
            config,
            nodes,
            authorities: Authorities { issuer, operators },
        })
    }

    /// Starts node `index` (its output appended to its log).
    pub fn start(&mut self, index: usize) -> Result<()> {
        let binary = self.config.node_binary.clone();
        let prefix = self
            .config
            .placement
            .as_ref()
            .map(|placement| placement[index].command_prefix.clone())
            .unwrap_or_default();
        let node = &mut self.nodes[index];
        ensure!(node.child.is_none(), "{} is already running", node.name);
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&node.log)
            .with_context(|| format!("opening {}", node.log.display()))?;
        let mut command = node_command(&prefix, &binary);
        // A process group of its own: a Ctrl-C at the terminal reaches the
        // devnet, which stops its nodes in order (and reads their state
        // first), not every node at once.
        #[cfg(unix)]
        std::os::unix::process::CommandExt::process_group(&mut command, 0);
        let child = command
            .arg("run")
            .arg("--home")
            .arg(&node.home)
            .env("YUCHAIN_EXIT_WITH_PARENT", "1")
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .with_context(|| format!("starting {}", binary.display()))?;
        node.child = Some(child);
        Ok(())
    }

    /// Starts every node.
    pub fn start_all(&mut self) -> Result<()> {
        for index in 0..self.nodes.len() {
            self.start(index)?;
        }
        Ok(())
    }

    /// Starts every node and waits (at most `timeout` each) until every one
    /// holds the chain's first block.
    pub async fn start_all_and_wait(&mut self, timeout: Duration) -> Result<()> {
        self.start_all()?;
        for index in 0..self.nodes.len() {
            self.wait_height(index, 1, timeout)
                .await
                .context("waiting for the chain's first block")?;
        }
        Ok(())
    }

    /// Kills node `index` at once (SIGKILL), as a crash would.
    pub fn kill(&mut self, index: usize) -> Result<()> {
        if let Some(mut child) = self.nodes[index].child.take() {
            let _ = child.kill();
            child.wait().context("waiting for a killed node")?;
        }
        Ok(())
    }

    /// Stops node `index` gracefully (SIGTERM), killing it after `grace`.
    pub fn stop(&mut self, index: usize, grace: Duration) -> Result<Option<ExitStatus>> {
        let Some(mut child) = self.nodes[index].child.take() else {
            return Ok(None);
        };
        let pid = nix::unistd::Pid::from_raw(i32::try_from(child.id()).unwrap_or(i32::MAX));
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
        let deadline = Instant::now() + grace;
        loop {
            if let Some(status) = child.try_wait()? {
                return Ok(Some(status));
            }
            if Instant::now() >= deadline {
                let _ = child.kill();
                return Ok(Some(child.wait()?));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Stops every node gracefully.
    pub fn stop_all(&mut self, grace: Duration) -> Result<()> {
        for index in 0..self.nodes.len() {
            self.stop(index, grace)?;
        }
        Ok(())
    }

    /// The process id of node `index`, if it was started and not stopped.
    pub fn pid(&self, index: usize) -> Option<u32> {
        self.nodes[index].child.as_ref().map(Child::id)
    }

    /// Whether node `index` runs (false once it exited).
    pub fn is_running(&mut self, index: usize) -> bool {
        match self.nodes[index].child.as_mut() {
            Some(child) => matches!(child.try_wait(), Ok(None)),
            None => false,
        }
    }

    /// Deletes a stopped node's block database and makes an empty one
    /// (keys, config and safety record kept): it re-syncs from genesis.
    pub fn wipe(&mut self, index: usize) -> Result<()> {
        ensure!(
            self.nodes[index].child.is_none(),
            "stop {} before wiping it",
            self.nodes[index].name
        );
        let node = &self.nodes[index];
        std::fs::remove_dir_all(node.home.join("db")).context("removing the block database")?;
        init_home(&self.config.node_binary, node)
    }

    /// A gateway client of node `index`, retrying the connection for up to
    /// `timeout`.
    pub async fn client(
        &self,
        index: usize,
        timeout: Duration,
    ) -> Result<WalletGatewayClient<Channel>> {
        let deadline = Instant::now() + timeout;
        let endpoint = self.nodes[index].endpoint();
        loop {
            match WalletGatewayClient::connect(endpoint.clone()).await {
                Ok(client) => return Ok(client.max_decoding_message_size(64 << 20)),
                Err(error) if Instant::now() >= deadline => {
                    bail!(
                        "{} is not serving at {endpoint}: {error}",
                        self.nodes[index].name
                    )
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        }
    }

    /// Node `index`'s chain info, or an error if it does not answer.
    pub async fn chain_info(&self, index: usize) -> Result<pb::GetChainInfoResponse> {
        let mut client = self.client(index, Duration::from_millis(500)).await?;
        let info = tokio::time::timeout(
            Duration::from_secs(3),
            client.get_chain_info(pb::GetChainInfoRequest {}),
        )
        .await
        .context("GetChainInfo timed out")??;
        Ok(info.into_inner())
    }

    /// Waits until node `index` has a durable height of at least `height`.
    pub async fn wait_height(&self, index: usize, height: u64, timeout: Duration) -> Result<u64> {
        let deadline = Instant::now() + timeout;
        let mut last = None;
        loop {
            if let Ok(info) = self.chain_info(index).await {
                if info.height >= height {
                    return Ok(info.height);
                }
                last = Some(info.height);
            }
            if Instant::now() >= deadline {
                bail!(
                    "{} did not reach height {height} within {timeout:?} (last seen: {last:?}); \
                     its log: {}",
                    self.nodes[index].name,
                    self.nodes[index].log.display()
                );
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// The state root after block `height` on node `index`.
    pub async fn state_root_at(&self, index: usize, height: u64) -> Result<Vec<u8>> {
        let mut client = self.client(index, Duration::from_secs(2)).await?;
        let block = client
            .get_block(pb::GetBlockRequest { height })
            .await
            .with_context(|| format!("GetBlock {height} from {}", self.nodes[index].name))?;
        Ok(block.into_inner().state_root)
    }

    /// Writes the authorities' keys (`keys/issuer.pem`, `keys/bank-N.pem`)
    /// and a CLI profile for each (`issuer.toml`, `bank-N.toml`: node 0's
    /// gateway, the key, the genesis file) into the cluster's directory, and
    /// returns the profiles' paths, the issuer's first.
    pub fn write_profiles(&self) -> Result<Vec<PathBuf>> {
        let keys = self.config.dir.join("keys");
        std::fs::create_dir_all(&keys).context("making the keys directory")?;
        let mut written = Vec::new();
        let mut actors = vec![("issuer".to_string(), &self.authorities.issuer)];
        for (index, (_, key)) in self.authorities.operators.iter().enumerate() {
            actors.push((format!("bank-{index}"), key));
        }
        for (name, key) in actors {
            let key_path = keys.join(format!("{name}.pem"));
            if !key_path.exists() {
                key.save_pem(&key_path)
                    .with_context(|| format!("writing {}", key_path.display()))?;
            }
            let profile = crate::client::Profile {
                node: Some(self.nodes[0].endpoint()),
                key: Some(key_path),
                genesis: Some(self.config.dir.join("genesis.toml")),
                ..crate::client::Profile::default()
            };
            let path = self.config.dir.join(format!("{name}.toml"));
            let _ = std::fs::remove_file(&path);
            profile.save(&path)?;
            written.push(path);
        }
        Ok(written)
    }

    /// The address of an operator's reserve.
    pub fn operator_address(&self, index: usize) -> Address {
        Address::from_public_key(&self.authorities.operators[index].1.public_key())
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for node in &mut self.nodes {
            if let Some(mut child) = node.child.take() {
                let _ = child.kill();
                let _ = child.wait();
            }
        }
    }
}

/// The `yuchain-node` binary to run: `explicit` if given, else
/// `$YUCHAIN_NODE_BINARY`, else the one next to this program.
pub fn locate_node_binary(explicit: Option<&Path>) -> Result<PathBuf> {
    if let Some(path) = explicit {
        return Ok(path.to_path_buf());
    }
    if let Some(path) = std::env::var_os("YUCHAIN_NODE_BINARY") {
        return Ok(PathBuf::from(path));
    }
    let me = std::env::current_exe().context("locating this program")?;
    let sibling = me.with_file_name("yuchain-node");
    ensure!(
        sibling.exists(),
        "no yuchain-node next to {}; build both (cargo build -p yuchain-node -p yuchain-cli, \
         with --release for benchmarks), or pass --node-binary",
        me.display()
    );
    Ok(sibling)
}

/// glibc's malloc arenas per node process unless the caller's environment
/// says otherwise: with its default (8 per core) a node's resident memory
/// kept growing in 30-minute soaks while its live heap stayed bounded, the
/// arenas holding freed pages; with 2 it ended a 30-minute soak at about
/// 390 MiB instead of 520–580 (BENCHMARKS.md, "Where the memory goes").
/// Other allocators ignore it.
const NODE_MALLOC_ARENAS: &str = "2";

/// The command that starts a node (behind `prefix`, such as `ip netns exec
/// NS`), with the environment a node is run with.
fn node_command(prefix: &[String], binary: &Path) -> Command {
    let mut command = match prefix.split_first() {
        Some((program, args)) => {
            let mut command = Command::new(program);
            command.args(args).arg(binary);
            command
        }
        None => Command::new(binary),
    };
    if std::env::var_os("MALLOC_ARENA_MAX").is_none() {
        command.env("MALLOC_ARENA_MAX", NODE_MALLOC_ARENAS);
    }
    command
}

/// Runs `yuchain-node init` for a node.
fn init_home(binary: &Path, node: &Node) -> Result<()> {
    let mut command = Command::new(binary);
    command
        .arg("init")
        .arg("--home")
        .arg(&node.home)
        .arg("--name")
        .arg(&node.name)
        .arg("--address")
        .arg(node.p2p.to_string())
        .arg("--p2p-listen")
        .arg(node.p2p.to_string())
        .arg("--gateway-listen")
        .arg(node.gateway.to_string())
        .arg("--metrics-listen")
        .arg(node.metrics.to_string());
    if node.observer {
        command.arg("--observer");
    }
    run_quietly(&mut command, "yuchain-node init")
}

/// A home's network public key, from its card.
fn network_key(home: &Path) -> Result<String> {
    let text = std::fs::read_to_string(home.join("validator.toml"))?;
    let card: toml::Value = toml::from_str(&text)?;
    card.get("network_public_key")
        .and_then(|value| value.as_str())
        .map(str::to_string)
        .context("a card without network_public_key")
}

fn run_quietly(command: &mut Command, what: &str) -> Result<()> {
    let output = command
        .output()
        .with_context(|| format!("running {what}"))?;
    if !output.status.success() {
        bail!(
            "{what} failed: {}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A node runs with few malloc arenas, unless the caller chose a
    /// number, and behind its namespace prefix when it has one.
    #[test]
    fn a_node_runs_with_few_malloc_arenas_and_behind_its_prefix() {
        let binary = Path::new("/opt/yuchain/yuchain-node");
        let plain = node_command(&[], binary);
        assert_eq!(plain.get_program(), binary.as_os_str());
        let arenas = plain
            .get_envs()
            .find(|(key, _)| *key == "MALLOC_ARENA_MAX")
            .and_then(|(_, value)| value);
        match std::env::var_os("MALLOC_ARENA_MAX") {
            None => assert_eq!(arenas, Some(std::ffi::OsStr::new(NODE_MALLOC_ARENAS))),
            Some(_) => assert_eq!(arenas, None, "the caller's choice is inherited"),
        }
        let prefix: Vec<String> = ["ip", "netns", "exec", "yuns-n0"].map(String::from).into();
        let placed = node_command(&prefix, binary);
        assert_eq!(placed.get_program(), "ip");
        let args: Vec<_> = placed.get_args().collect();
        assert_eq!(
            args,
            ["netns", "exec", "yuns-n0", "/opt/yuchain/yuchain-node"]
        );
    }
}
