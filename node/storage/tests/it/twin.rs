//! MemStore and RocksStore, fed the same seeded stream of random commits
//! (some at wrong heights or with a reused hash), must agree on every result
//! and every read: the in-memory twin is only useful if it is exact.

use yuchain_proto::{Address, Domain, Hash32};
use yuchain_storage::{BlockCommit, BlockStore, MemStore, RocksStore};

use crate::fixtures::{collect, full_history};

/// SplitMix64 with a fixed seed, so a failure replays exactly.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, bound: u64) -> u64 {
        self.next() % bound
    }

    /// A short key from a small alphabet, so keys collide, share prefixes
    /// and include the empty key.
    fn key(&mut self) -> Vec<u8> {
        let len = self.below(3) as usize;
        (0..len)
            .map(|_| [0x00, 0x01, 0x7F, 0xFF][self.below(4) as usize])
            .collect()
    }

    fn update(&mut self) -> (Vec<u8>, Option<Vec<u8>>) {
        let key = self.key();
        let value = (self.below(3) != 0).then(|| self.next().to_be_bytes().to_vec());
        (key, value)
    }
}

const STEPS: u64 = 150;
const TX_POOL: u64 = 16;

fn pool_tx_id(index: u64) -> Hash32 {
    Domain::TxId.hash(&index.to_be_bytes())
}

fn accounts() -> [Address; 4] {
    let mut adjacent = [0x42; 20];
    adjacent[19] = 0x43;
    [
        Address([0x00; 20]),
        Address([0x42; 20]),
        Address(adjacent),
        Address([0xFF; 20]),
    ]
}

fn step_hash(step: u64) -> Hash32 {
    Domain::BlockHeader.hash(&step.to_be_bytes())
}

#[test]
fn mem_and_rocks_agree_on_a_random_stream_of_commits() {
    let dir = tempfile::tempdir().expect("tempdir");
    let rocks = RocksStore::create(dir.path()).expect("create");
    let mem = MemStore::new();
    let stores: [&dyn BlockStore; 2] = [&mem, &rocks];
    let mut rng = Rng(0x5EED);
    let mut next_height = 0u64;
    let mut rejected = 0;
    for step in 0..STEPS {
        let height = match rng.below(8) {
            0 => next_height + 1 + rng.below(2),
            1 => next_height.saturating_sub(1 + rng.below(2)),
            _ => next_height,
        };
        let block_hash = if rng.below(10) == 0 && step > 0 {
            step_hash(rng.below(step))
        } else {
            step_hash(step)
        };
        let commit = BlockCommit {
            height,
            block_hash,
            state_root: Domain::StateKey.hash(&step.to_be_bytes()),
            block: step.to_be_bytes().to_vec(),
            transactions: (0..rng.below(4))
                .map(|_| {
                    (
                        pool_tx_id(rng.below(TX_POOL)),
                        rng.next().to_be_bytes().to_vec(),
                    )
                })
                .collect(),
            receipts: (0..rng.below(4))
                .map(|_| {
                    (
                        pool_tx_id(rng.below(TX_POOL)),
                        rng.next().to_be_bytes().to_vec(),
                    )
                })
                .collect(),
            state: (0..rng.below(7)).map(|_| rng.update()).collect(),
            tree_nodes: (0..rng.below(7)).map(|_| rng.update()).collect(),
            history: (0..rng.below(5))
                .map(|i| {
                    let account = accounts()[rng.below(4) as usize];
                    let index = rng.below(6) as u32;
                    (
                        account,
                        index,
                        Domain::TxId.hash_parts(&[&step.to_be_bytes(), &[i as u8]]),
                    )
                })
                .collect(),
            ordered_batches: (0..rng.below(3))
                .map(|_| pool_tx_id(rng.below(TX_POOL)))
                .collect(),
        };
        let results = stores.map(|store| format!("{:?}", store.commit(&commit)));
        assert_eq!(results[0], results[1], "step {step}: commit results differ");
        if results[0] == "Ok(())" {
            next_height += 1;
        } else {
            rejected += 1;
        }
    }
    assert!(
        rejected > 10,
        "only {rejected} commits were rejected: the stream is too tame"
    );
    assert!(next_height > 80, "only {next_height} commits succeeded");

    let reads = |store: &dyn BlockStore| -> String {
        let mut out = format!("head {:?}\n", store.head().expect("head"));
        for height in 0..=next_height {
            out += &format!("block {height} {:?}\n", store.block(height).expect("block"));
        }
        for step in 0..STEPS {
            let hash = step_hash(step);
            out += &format!(
                "hash {step} {:?}\n",
                store.block_height(&hash).expect("height")
            );
        }
        for index in 0..TX_POOL {
            let id = pool_tx_id(index);
            out += &format!(
                "tx {index} {:?} {:?} {:?}\n",
                store.transaction(&id).expect("tx"),
                store.receipt(&id).expect("receipt"),
                store.batch_height(&id).expect("batch height")
            );
        }
        out += &format!("state {:?}\n", collect(|visit| store.for_each_state(visit)));
        out += &format!(
            "nodes {:?}\n",
            collect(|visit| store.for_each_tree_node(visit))
        );
        for key in [vec![], vec![0x00], vec![0xFF, 0x01], vec![0x7F, 0x7F]] {
            out += &format!(
                "key {key:?} {:?} {:?}\n",
                store.state(&key).expect("state"),
                store.tree_node(&key).expect("node")
            );
        }
        for account in accounts() {
            let all = full_history(store, &account, 1_000);
            out += &format!("history {account:?} {all:?}\n");
            for page in [1, 3] {
                assert_eq!(full_history(store, &account, page), all, "pages of {page}");
            }
        }
        out
    };
    let mem_reads = reads(&mem);
    let rocks_reads = reads(&rocks);
    for (line, (m, r)) in mem_reads.lines().zip(rocks_reads.lines()).enumerate() {
        assert_eq!(m, r, "read {line} differs");
    }
    assert_eq!(mem_reads, rocks_reads);
}
