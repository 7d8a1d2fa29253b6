"""Offline tests of wallet.py (no node needed): python -m unittest test_wallet.

The end-to-end check against a real chain is scripts/python-wallet-test.sh.
"""

import os
import random
import struct
import subprocess
import sys
import tempfile
import unittest
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import wallet  # noqa: E402
from wallet import gateway_pb2, ledger_pb2, node_pb2  # noqa: E402
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey  # noqa: E402

# The chain the unit tests' certificates are signed for.
CHAIN_ID = "yuchain-unit-test"


class Bech32m(unittest.TestCase):
    def test_bip350_valid_checksums(self):
        for text in [
            "A1LQFN3A",
            "a1lqfn3a",
            "an83characterlonghumanreadablepartthatcontainsthetheexcludedcharactersbioandnumber11sg7hg6",
            "abcdef1l7aum6echk45nj3s0wdvt2fg8x9yrzpqzd3ryx",
            "11llllllllllllllllllllllllllllllllllllllllllllllllllllllllllllllllllllllllllllllllllludsr8",
            "split1checkupstagehandshakeupstreamerranterredcaperredlc445v",
            "?1v759aa",
        ]:
            lower = text.lower()
            sep = lower.rfind("1")
            hrp, rest = lower[:sep], lower[sep + 1 :]
            values = [wallet.BECH32_CHARSET.find(c) for c in rest]
            self.assertEqual(
                wallet._polymod(wallet._hrp_expand(hrp) + values), wallet.BECH32M_CONST, text
            )

    def test_bech32_is_not_bech32m(self):
        # Valid bech32 (BIP 173) strings are not valid bech32m.
        with self.assertRaises(ValueError):
            wallet.bech32m_decode("a12uel5l")

    def test_addresses_round_trip_and_catch_typos(self):
        rng = random.Random(7)
        for _ in range(50):
            address = bytes(rng.randrange(256) for _ in range(20))
            text = wallet.address_text(address)
            self.assertTrue(text.startswith("yu1"))
            self.assertEqual(wallet.parse_address(text), address)
            self.assertEqual(wallet.parse_address(text.upper()), address)
            typo = text[:-3] + ("p" if text[-3] == "q" else "q") + text[-2:]
            with self.assertRaises(wallet.WalletError):
                wallet.parse_address(typo)
        with self.assertRaises(wallet.WalletError):
            wallet.parse_address(wallet.bech32m_encode("bc", bytes(20)))
        with self.assertRaises(wallet.WalletError):
            wallet.parse_address(wallet.bech32m_encode("yu", bytes(19)))


class Amounts(unittest.TestCase):
    def test_parse_and_format(self):
        self.assertEqual(wallet.parse_yuan("12"), 1200)
        self.assertEqual(wallet.parse_yuan("12.3"), 1230)
        self.assertEqual(wallet.parse_yuan("12.34"), 1234)
        self.assertEqual(wallet.parse_yuan("0.01"), 1)
        self.assertEqual(wallet.format_yuan(1234), "12.34")
        self.assertEqual(wallet.format_yuan(5), "0.05")
        for text in ["", ".5", "1.", "1.234", "-1", "+1", "1,000", "1e3", "１２", " 1", "1.2.3"]:
            with self.assertRaises(wallet.WalletError, msg=text):
                wallet.parse_yuan(text)
        with self.assertRaises(wallet.WalletError):
            wallet.parse_yuan("184467440737095517")


class Canonical(unittest.TestCase):
    def test_protobuf_writes_the_canonical_encoding(self):
        rng = random.Random(1)
        for _ in range(300):
            pick = lambda big: rng.choice([0, 1, 127, 128, 300, big])  # noqa: E731
            fields = dict(
                chain_id=rng.choice(["", "yuchain-devnet", "x" * 64]),
                sender=rng.choice([b"", os.urandom(20)]),
                public_key=rng.choice([b"", os.urandom(32)]),
                sequence=pick(2**63),
                expiry_height=pick(2**40),
                max_fee=pick(2**64 - 1),
                to=rng.choice([b"", os.urandom(20)]),
                amount=pick(10**12),
                memo=rng.choice(["", "coffee", "午饭", "m" * 256]),
            )
            body = ledger_pb2.TransactionBody(
                chain_id=fields["chain_id"],
                sender=fields["sender"],
                public_key=fields["public_key"],
                sequence=fields["sequence"],
                expiry_height=fields["expiry_height"],
                max_fee=fields["max_fee"],
                transfer=ledger_pb2.Transfer(
                    to=fields["to"], amount=fields["amount"], memo=fields["memo"]
                ),
            )
            encoded = body.SerializeToString(deterministic=True)
            self.assertEqual(encoded, wallet.canonical_transfer_body(**fields))
            self.assertEqual(
                ledger_pb2.TransactionBody.FromString(encoded).SerializeToString(), encoded
            )

    def test_an_empty_oneof_message_is_still_written(self):
        body = ledger_pb2.TransactionBody(transfer=ledger_pb2.Transfer())
        # Field 19, length-delimited, length 0.
        self.assertEqual(body.SerializeToString(), bytes([0x9A, 0x01, 0x00]))


class Hashing(unittest.TestCase):
    def test_hash_parts_prefixes_lengths(self):
        import blake3

        expected = blake3.blake3(
            struct.pack("<Q", 2) + b"ab" + struct.pack("<Q", 1) + b"c",
            derive_key_context="yuchain v1 transaction id",
        ).digest()
        self.assertEqual(wallet.hash_parts(wallet.CTX_TX_ID, [b"ab", b"c"]), expected)
        self.assertNotEqual(
            wallet.hash_parts(wallet.CTX_TX_ID, [b"ab", b"c"]),
            wallet.hash_parts(wallet.CTX_TX_ID, [b"a", b"bc"]),
        )


# ---------------------------------------------------------------------------
# A synthetic certified answer: encoder of the consensus storage format.
# ---------------------------------------------------------------------------


def enc_vote(epoch, rnd, block, height, parent, parent_round):
    return struct.pack("<QQ", epoch, rnd) + block + struct.pack("<Q", height) + parent + struct.pack("<Q", parent_round)


def enc_qc(vote, signatures):
    out = vote + struct.pack("<I", len(signatures))
    for signer, signature in signatures:
        out += struct.pack("<H", signer) + signature
    return out


def enc_block(epoch, rnd, height, parent, justify, timestamp, proposer, payload):
    return (
        struct.pack("<QQQ", epoch, rnd, height)
        + parent
        + justify
        + struct.pack("<QH", timestamp, proposer)
        + struct.pack("<I", len(payload))
        + payload
        + b"\x00"
    )


def lone_proof(root_key, value):
    """A state with one entry: returns (root, proof)."""
    k = wallet.derive_key(wallet.CTX_STATE_KEY, root_key)
    v = wallet.value_hash(value)
    running = wallet.leaf_hash(k, v)
    node = wallet.BUCKETS + wallet.bucket_of(k)
    for _ in range(16):
        running = wallet.node_hash(running, wallet.ZERO32) if node % 2 == 0 else wallet.node_hash(wallet.ZERO32, running)
        node //= 2
    proof = ledger_pb2.StateProof(
        root=running, key=root_key, value=value,
        bucket=[ledger_pb2.BucketEntry(key_hash=k, value_hash=v)],
        siblings=[wallet.ZERO32] * 16,
    )
    return running, proof


class AccountCheck(unittest.TestCase):
    def setUp(self):
        self.keys = [Ed25519PrivateKey.generate() for _ in range(4)]
        self.public = [wallet.public_bytes(key) for key in self.keys]
        self.address = wallet.address_of(os.urandom(32))
        account = ledger_pb2.Account(address=self.address, balance=4_900, next_sequence=1, kind=3)
        value = account.SerializeToString()
        root, proof = lone_proof(wallet.account_state_key(self.address), value)
        payload = node_pb2.BlockPayload(
            executed=node_pb2.ExecutedState(height=12, block_hash=bytes(32), state_root=root)
        ).SerializeToString()
        justify = enc_qc(enc_vote(0, 6, bytes([3]) * 32, 19, bytes([2]) * 32, 5), [])
        block = enc_block(0, 7, 20, bytes([3]) * 32, justify, 1, 3, payload)
        block_hash = wallet.hash_parts(wallet.CTX_CONSENSUS, [b"block", block])
        self.block_hash = block_hash
        vote = enc_vote(0, 8, bytes([4]) * 32, 21, block_hash, 7)
        digest = wallet.hash_parts(
            wallet.CTX_CONSENSUS, [b"vote", wallet.chain_tag(CHAIN_ID), vote]
        )
        self.make = lambda signers, vote=vote, digest=digest: (
            b"\x01" + block + enc_qc(vote, [(i, self.keys[i].sign(digest)) for i in signers]) + b"\x00"
        )
        self.answer = gateway_pb2.GetAccountResponse(
            account=account, height=12, proof=proof, certified=self.make([0, 1, 3])
        )

    def check(self, answer, address=None):
        return wallet.check_account(answer, address or self.address, self.public, CHAIN_ID)

    def refused(self, answer, check, address=None):
        with self.assertRaises(wallet.CheckFailed) as caught:
            self.check(answer, address)
        self.assertEqual(caught.exception.check, check, str(caught.exception))

    def test_an_honest_answer_checks_out(self):
        checked = self.check(self.answer)
        self.assertEqual(checked.account.balance, 4_900)
        self.assertEqual((checked.signers, checked.validators, checked.height), (3, 4, 12))
        self.assertEqual(checked.certified_by, 20)

    def test_every_tamper_is_refused(self):
        expected = {
            "balance": "account", "hide-account": "account", "height": "height",
            "sibling": "proof", "root": "proof", "signature": "certificate",
            "signer": "certificate", "payload": "block hash",
        }
        for how in wallet.TAMPERS:
            self.refused(wallet.tamper(self.answer, how), expected[how])

    def test_a_certificate_of_another_chain_is_refused(self):
        with self.assertRaises(wallet.CheckFailed) as refused:
            wallet.check_account(self.answer, self.address, self.public, "yuchain-other")
        self.assertEqual(refused.exception.check, "certificate")

    def test_weak_repeated_or_unknown_signers_are_refused(self):
        for signers in ([0, 1], [1, 1, 2], [2, 1, 0]):
            bad = gateway_pb2.GetAccountResponse()
            bad.CopyFrom(self.answer)
            bad.certified = self.make(signers)
            self.refused(bad, "certificate")
        strangers = [wallet.public_bytes(Ed25519PrivateKey.generate()) for _ in range(4)]
        with self.assertRaises(wallet.CheckFailed):
            wallet.check_account(self.answer, self.address, strangers, CHAIN_ID)

    def test_another_account_or_trailing_bytes_are_refused(self):
        self.refused(self.answer, "proof", address=bytes(20))
        bad = gateway_pb2.GetAccountResponse()
        bad.CopyFrom(self.answer)
        bad.certified += b"\x00"
        self.refused(bad, "decode")


class Keys(unittest.TestCase):
    def test_reads_pkcs8_v2_with_the_public_key_as_the_rust_cli_writes_it(self):
        import base64

        key = Ed25519PrivateKey.generate()
        from cryptography.hazmat.primitives import serialization

        seed = key.private_bytes(
            serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption()
        )
        public = wallet.public_bytes(key)
        der = bytes.fromhex("3051020101300506032b657004220420") + seed + bytes.fromhex("812100") + public
        with tempfile.TemporaryDirectory() as tmp:
            path = os.path.join(tmp, "v2.pem")
            Path(path).write_text(
                "-----BEGIN PRIVATE KEY-----\n" + base64.b64encode(der).decode() + "\n-----END PRIVATE KEY-----\n"
            )
            self.assertEqual(wallet.public_bytes(wallet.load_key(path)), public)
            wrong = der[:-1] + bytes([der[-1] ^ 1])
            Path(path).write_text(
                "-----BEGIN PRIVATE KEY-----\n" + base64.b64encode(wrong).decode() + "\n-----END PRIVATE KEY-----\n"
            )
            with self.assertRaises(wallet.WalletError):
                wallet.load_key(path)


class Cli(unittest.TestCase):
    def test_new_key_then_address(self):
        with tempfile.TemporaryDirectory() as tmp:
            path = os.path.join(tmp, "k.pem")
            run = lambda *args: subprocess.run(  # noqa: E731
                [sys.executable, str(Path(wallet.__file__)), *args],
                capture_output=True, text=True,
            )
            made = run("new-key", "--out", path)
            self.assertEqual(made.returncode, 0, made.stderr)
            shown = run("address", "--key", path)
            self.assertEqual(shown.returncode, 0, shown.stderr)
            self.assertIn(made.stdout.splitlines()[1], shown.stdout)
            self.assertEqual(os.stat(path).st_mode & 0o777, 0o600)
            again = run("new-key", "--out", path)
            self.assertEqual(again.returncode, 1)
            self.assertIn("not overwriting", again.stderr)


if __name__ == "__main__":
    unittest.main()
