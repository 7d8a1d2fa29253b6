#!/usr/bin/env python3
"""A yuchain wallet in Python: keys, payments and verified balances.

It talks to a node's `yuchain.v1.WalletGateway` over gRPC with code
generated from the repository's .proto files (run ./generate.sh first) and
shares no code with the Rust implementation. Everything a wallet must get
exactly right is written out here:

* addresses: the first 20 bytes of blake3 derive_key("yuchain v1 address",
  public key), shown as bech32m with the prefix "yu";
* transactions: a canonically encoded TransactionBody, signed with ed25519
  over "yuchain v1 transaction signature\\0" followed by the body bytes; the id
  is blake3 derive_key("yuchain v1 transaction id") over the length-prefixed
  body and signature;
* balances: a GetAccount answer is checked with the validators' consensus
  keys from the genesis file alone (quorum certificate, block hash, claimed
  state root, Merkle proof, account record), trusting no node.

Key files are PKCS#8 PEM ("-----BEGIN PRIVATE KEY-----"): written as v1,
read as v1 or v2 (RFC 5958, which the Rust CLI's `yuchain keys new` writes),
so either tool uses the other's key files.
"""

from __future__ import annotations

import argparse
import base64
import binascii
import os
import struct
import sys
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE / "gen"))

try:
    import blake3
    import grpc
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import (
        Ed25519PrivateKey,
        Ed25519PublicKey,
    )
except ImportError as error:  # pragma: no cover - setup problem
    sys.exit(
        f"wallet.py: a dependency is missing ({error}); "
        f"run: pip install -r {HERE / 'requirements.txt'}"
    )

try:
    from yuchain.v1 import gateway_pb2, gateway_pb2_grpc, ledger_pb2, node_pb2
except ImportError as error:  # pragma: no cover - setup problem
    sys.exit(
        f"wallet.py: the generated protobuf modules are missing ({error}); "
        f"run {HERE / 'generate.sh'} first"
    )


class WalletError(Exception):
    """A failure to report to the user (exit status 1)."""


# ---------------------------------------------------------------------------
# Hashing (proto/src/hash.rs, ledger/src/tree.rs)
# ---------------------------------------------------------------------------

CTX_TX_ID = "yuchain v1 transaction id"
CTX_ADDRESS = "yuchain v1 address"
CTX_STATE_KEY = "yuchain v1 state key"
CTX_CONSENSUS = "yuchain v1 consensus"
TX_SIGNATURE_PREFIX = b"yuchain v1 transaction signature\0"
assert len(TX_SIGNATURE_PREFIX) == 33

ZERO32 = bytes(32)


def derive_key(context: str, data: bytes) -> bytes:
    """blake3 in key-derivation mode (Domain::hash)."""
    return blake3.blake3(data, derive_key_context=context).digest()


def hash_parts(context: str, parts: list[bytes]) -> bytes:
    """Domain::hash_parts: each part prefixed with its length, u64 LE."""
    hasher = blake3.blake3(derive_key_context=context)
    for part in parts:
        hasher.update(struct.pack("<Q", len(part)))
        hasher.update(part)
    return hasher.digest()


def keyed(key: bytes, data: bytes) -> bytes:
    return blake3.blake3(data, key=key).digest()


VALUE_KEY = derive_key("yuchain v1 state tree value", b"")
LEAF_KEY = derive_key("yuchain v1 state tree leaf", b"")
NODE_KEY = derive_key("yuchain v1 state tree node", b"")


def tx_id(body: bytes, signature: bytes) -> bytes:
    return hash_parts(CTX_TX_ID, [body, signature])


# ---------------------------------------------------------------------------
# Addresses: bech32m (BIP 350) with the prefix "yu" (proto/src/address.rs)
# ---------------------------------------------------------------------------

ADDRESS_PREFIX = "yu"
BECH32_CHARSET = "qpzry9x8gf2tvdw0s3jn54khce6mua7l"
BECH32M_CONST = 0x2BC830A3


def _polymod(values: list[int]) -> int:
    generator = [0x3B6A57B2, 0x26508E6D, 0x1EA119FA, 0x3D4233DD, 0x2A1462B3]
    check = 1
    for value in values:
        top = check >> 25
        check = (check & 0x1FFFFFF) << 5 ^ value
        for i in range(5):
            check ^= generator[i] if (top >> i) & 1 else 0
    return check


def _hrp_expand(hrp: str) -> list[int]:
    return [ord(c) >> 5 for c in hrp] + [0] + [ord(c) & 31 for c in hrp]


def _convert_bits(data: bytes | list[int], from_bits: int, to_bits: int, pad: bool) -> list[int]:
    acc, bits, out = 0, 0, []
    maxv = (1 << to_bits) - 1
    for value in data:
        if value < 0 or value >> from_bits:
            raise ValueError("invalid data value")
        acc = (acc << from_bits) | value
        bits += from_bits
        while bits >= to_bits:
            bits -= to_bits
            out.append((acc >> bits) & maxv)
    if pad:
        if bits:
            out.append((acc << (to_bits - bits)) & maxv)
    elif bits >= from_bits or ((acc << (to_bits - bits)) & maxv):
        raise ValueError("invalid padding")
    return out


def bech32m_encode(hrp: str, data: bytes) -> str:
    values = _convert_bits(data, 8, 5, True)
    polymod = _polymod(_hrp_expand(hrp) + values + [0] * 6) ^ BECH32M_CONST
    checksum = [(polymod >> 5 * (5 - i)) & 31 for i in range(6)]
    return hrp + "1" + "".join(BECH32_CHARSET[v] for v in values + checksum)


def bech32m_decode(text: str) -> tuple[str, bytes]:
    if any(ord(c) < 33 or ord(c) > 126 for c in text):
        raise ValueError("characters outside US-ASCII")
    if text.lower() != text and text.upper() != text:
        raise ValueError("mixed case")
    text = text.lower()
    sep = text.rfind("1")
    if sep < 1 or sep + 7 > len(text):
        raise ValueError("no separator or too short")
    hrp, rest = text[:sep], text[sep + 1 :]
    if any(c not in BECH32_CHARSET for c in rest):
        raise ValueError("invalid character")
    values = [BECH32_CHARSET.find(c) for c in rest]
    if _polymod(_hrp_expand(hrp) + values) != BECH32M_CONST:
        raise ValueError("bad checksum (not bech32m)")
    return hrp, bytes(_convert_bits(values[:-6], 5, 8, False))


def address_of(public_key: bytes) -> bytes:
    return derive_key(CTX_ADDRESS, public_key)[:20]


def address_text(address: bytes) -> str:
    return bech32m_encode(ADDRESS_PREFIX, address)


def parse_address(text: str) -> bytes:
    try:
        hrp, data = bech32m_decode(text.strip())
    except ValueError as error:
        raise WalletError(f"{text!r} is not an address (yu1...): {error}") from None
    if hrp != ADDRESS_PREFIX:
        raise WalletError(f"{text!r} is not a yuchain address: prefix {hrp!r}, not 'yu'")
    if len(data) != 20:
        raise WalletError(f"{text!r} is not an address: {len(data)} bytes, not 20")
    return data


# ---------------------------------------------------------------------------
# Money (proto/src/amount.rs)
# ---------------------------------------------------------------------------

U64_MAX = (1 << 64) - 1


def parse_yuan(text: str) -> int:
    """'12', '12.3', '12.34' -> fen. No signs, separators or extra decimals."""
    bad = WalletError(f"{text!r} is not an amount in yuan (e.g. 12.34, at most 2 decimals)")
    whole, dot, fraction = text.partition(".")
    digits = "0123456789"
    if not whole or any(c not in digits for c in whole):
        raise bad
    if dot and (not fraction or len(fraction) > 2 or any(c not in digits for c in fraction)):
        raise bad
    fen = int(whole) * 100 + (int(fraction.ljust(2, "0")) if dot else 0)
    if fen > U64_MAX:
        raise WalletError(f"{text!r} is too large an amount")
    return fen


def format_yuan(fen: int) -> str:
    return f"{fen // 100}.{fen % 100:02d}"


# ---------------------------------------------------------------------------
# Keys
# ---------------------------------------------------------------------------


ED25519_OID = bytes.fromhex("06032b6570")  # 1.3.101.112


def _der(data: bytes, pos: int) -> tuple[int, bytes, int]:
    """One DER element at pos: (tag, content, position after it)."""
    if pos + 2 > len(data):
        raise ValueError("truncated")
    tag, length = data[pos], data[pos + 1]
    pos += 2
    if length & 0x80:
        count = length & 0x7F
        if count == 0 or count > 2 or pos + count > len(data):
            raise ValueError("bad length")
        length = int.from_bytes(data[pos : pos + count], "big")
        pos += count
    if pos + length > len(data):
        raise ValueError("truncated")
    return tag, data[pos : pos + length], pos + length


def ed25519_seed_from_pkcs8(der: bytes) -> tuple[bytes, Optional[bytes]]:
    """The seed (and public key, if present) of a PKCS#8 v1 or v2 (RFC 5958)
    ed25519 key. The Rust CLI writes v2, with the public key, which
    `cryptography` does not read."""
    tag, body, end = _der(der, 0)
    if tag != 0x30 or end != len(der):
        raise ValueError("not a DER SEQUENCE")
    tag, version, pos = _der(body, 0)
    if tag != 0x02 or version not in (b"\x00", b"\x01"):
        raise ValueError("not PKCS#8 version 1 or 2")
    tag, algorithm, pos = _der(body, pos)
    if tag != 0x30 or algorithm != ED25519_OID:
        raise ValueError("not an ed25519 key")
    tag, wrapped, pos = _der(body, pos)
    if tag != 0x04:
        raise ValueError("no private key")
    tag, seed, inner_end = _der(wrapped, 0)
    if tag != 0x04 or len(seed) != 32 or inner_end != len(wrapped):
        raise ValueError("the private key is not a 32-byte seed")
    public = None
    while pos < len(body):
        tag, content, pos = _der(body, pos)
        if tag == 0xA0:  # [0] attributes: ignored
            continue
        if tag == 0x81 and version == b"\x01" and len(content) == 33 and content[0] == 0:
            public = content[1:]  # [1] publicKey BIT STRING, no unused bits
            continue
        raise ValueError(f"unexpected field (tag {tag:#x})")
    return seed, public


def load_key(path: str) -> Ed25519PrivateKey:
    try:
        text = Path(path).read_text()
    except (OSError, UnicodeDecodeError) as error:
        raise WalletError(f"reading the key file {path}: {error}") from None
    lines = [line.strip() for line in text.strip().splitlines()]
    if len(lines) < 3 or lines[0] != "-----BEGIN PRIVATE KEY-----" or lines[-1] != "-----END PRIVATE KEY-----":
        raise WalletError(f"{path} is not a PEM private key (-----BEGIN PRIVATE KEY-----)")
    try:
        der = base64.b64decode("".join(lines[1:-1]), validate=True)
        seed, public = ed25519_seed_from_pkcs8(der)
    except (ValueError, binascii.Error) as error:
        raise WalletError(f"{path} is not a PKCS#8 ed25519 key: {error}") from None
    key = Ed25519PrivateKey.from_private_bytes(seed)
    if public is not None and public != public_bytes(key):
        raise WalletError(f"{path}: its public key does not belong to its private key")
    return key


def public_bytes(key: Ed25519PrivateKey) -> bytes:
    return key.public_key().public_bytes(
        serialization.Encoding.Raw, serialization.PublicFormat.Raw
    )


def save_new_key(path: str) -> Ed25519PrivateKey:
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    try:
        # Never overwrite: a lost key is lost money. Readable by its owner only.
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise WalletError(f"{path} exists; not overwriting a key file") from None
    except OSError as error:
        raise WalletError(f"creating {path}: {error.strerror}") from None
    with os.fdopen(fd, "wb") as file:
        file.write(pem)
        file.flush()
        os.fsync(file.fileno())
    return key


# ---------------------------------------------------------------------------
# Canonical protobuf encoding of a transfer body, written out by hand
# (prost's rules: fields in number order, defaults omitted, shortest varints;
# a set oneof field is written even when its message is empty).
# ---------------------------------------------------------------------------


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _field_varint(number: int, value: int) -> bytes:
    return _varint(number << 3) + _varint(value) if value else b""


def _field_bytes(number: int, value: bytes, always: bool = False) -> bytes:
    if not value and not always:
        return b""
    return _varint(number << 3 | 2) + _varint(len(value)) + value


def canonical_transfer_body(
    chain_id: str,
    sender: bytes,
    public_key: bytes,
    sequence: int,
    expiry_height: int,
    max_fee: int,
    to: bytes,
    amount: int,
    memo: str,
) -> bytes:
    transfer = _field_bytes(1, to) + _field_varint(2, amount) + _field_bytes(3, memo.encode())
    return (
        _field_bytes(1, chain_id.encode())
        + _field_bytes(2, sender)
        + _field_bytes(3, public_key)
        + _field_varint(4, sequence)
        + _field_varint(5, expiry_height)
        + _field_varint(6, max_fee)
        + _field_bytes(19, transfer, always=True)
    )


# ---------------------------------------------------------------------------
# The gateway
# ---------------------------------------------------------------------------

RESULT_NAMES = {
    value.number: value.name.removeprefix("RESULT_CODE_")
    for value in ledger_pb2.DESCRIPTOR.enum_types_by_name["ResultCode"].values
}
STATUS_NAMES = {
    value.number: value.name.removeprefix("TRANSACTION_STATUS_")
    for value in gateway_pb2.DESCRIPTOR.enum_types_by_name["TransactionStatus"].values
}


def connect(args: argparse.Namespace) -> gateway_pb2_grpc.WalletGatewayStub:
    """A stub for the gateway at --node: https://HOST:PORT over TLS (trusting
    --tls-ca, else the system's roots), anything else plaintext."""
    target = args.node.rstrip("/")
    tls = target.startswith("https://")
    for scheme in ("http://", "grpc://", "https://"):
        if target.startswith(scheme):
            target = target[len(scheme) :]
    if tls:
        roots = None
        if args.tls_ca:
            with open(args.tls_ca, "rb") as ca:
                roots = ca.read()
        credentials = grpc.ssl_channel_credentials(root_certificates=roots)
        options = [("grpc.ssl_target_name_override", args.tls_domain)] if args.tls_domain else []
        channel = grpc.secure_channel(target, credentials, options=options)
    elif args.tls_ca or args.tls_domain:
        raise WalletError("--tls-ca and --tls-domain need an https:// node URL")
    else:
        channel = grpc.insecure_channel(target)
    return gateway_pb2_grpc.WalletGatewayStub(channel)


def error_reason(error: grpc.RpcError) -> Optional[str]:
    """The google.rpc.ErrorInfo reason of a refusal, if it carries one."""
    try:
        from google.rpc import error_details_pb2
        from grpc_status import rpc_status
    except ImportError:
        return None
    try:
        status = rpc_status.from_call(error)
    except Exception:  # a malformed status detail: report the message only
        return None
    if status is None:
        return None
    for detail in status.details:
        if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
            info = error_details_pb2.ErrorInfo()
            detail.Unpack(info)
            return f"{info.domain}/{info.reason}" if info.domain else info.reason
    return None


def refusal(what: str, error: grpc.RpcError) -> WalletError:
    code = error.code().name if error.code() else "UNKNOWN"
    reason = error_reason(error)
    if reason:
        return WalletError(f"{what}: the node refused: {code}: {error.details()} [{reason}]")
    return WalletError(f"{what} failed: {code}: {error.details()}")


def call(what: str, method, request, timeout: float):
    try:
        return method(request, timeout=timeout)
    except grpc.RpcError as error:
        raise refusal(what, error) from None


# ---------------------------------------------------------------------------
# pay
# ---------------------------------------------------------------------------

EXPIRY_BLOCKS = 1_000
COMMIT_WAIT_MS = 30_000


def cmd_pay(args: argparse.Namespace) -> int:
    key = load_key(args.key)
    public_key = public_bytes(key)
    sender = address_of(public_key)
    to = parse_address(args.to)
    amount = parse_yuan(args.amount)
    if amount == 0:
        raise WalletError("the amount must be positive")
    max_fee = parse_yuan(args.max_fee)
    memo = args.memo or ""
    if len(memo.encode()) > 256:
        raise WalletError("the memo is longer than 256 bytes")

    gateway = connect(args)
    info = call("GetChainInfo", gateway.GetChainInfo, gateway_pb2.GetChainInfoRequest(), 10)
    answer = call(
        "GetAccount",
        gateway.GetAccount,
        gateway_pb2.GetAccountRequest(address=sender),
        15,
    )
    if args.genesis:
        # Sign with the certified sequence (docs/API.md, "Which sequence to
        # sign"): a node that lies about `latest` cannot make a retry a
        # second payment. When `latest` shows transactions the certified
        # state does not have yet, wait for them to be certified.
        certified_next = answer.account.next_sequence if answer.HasField("account") else None
        latest_next = answer.latest.next_sequence if answer.HasField("latest") else None
        min_height = 0
        if answer.latest_height > answer.height and certified_next != latest_next:
            min_height = answer.latest_height
            answer = call(
                "GetAccount",
                gateway.GetAccount,
                gateway_pb2.GetAccountRequest(
                    address=sender, min_height=min_height, wait_timeout_ms=30_000
                ),
                45,
            )
        checked = check_account(
            answer, sender, genesis_validators(args.genesis), genesis_chain_id(args.genesis)
        )
        if checked.height < min_height:
            raise CheckFailed("height", f"the answer is of height {checked.height}, below {min_height}")
        if checked.account is None:
            raise WalletError(
                f"no account {address_text(sender)} in the state the validators certified at "
                f"height {checked.height}; a bank registers a wallet with `yuchain operator register`"
            )
        account, base_height = checked.account, checked.height
        print(f"sequence {account.next_sequence}, certified at height {base_height}")
    else:
        # Without a genesis file to check a proof against, this example takes
        # the node's word for the sequence (`latest`, unproven).
        if not answer.HasField("latest"):
            raise WalletError(
                f"no account {address_text(sender)} exists on this chain yet; a bank registers a "
                "wallet with `yuchain operator register --public-key HEX`"
            )
        account, base_height = answer.latest, info.height
        print("warning: unpinned: signing with the node's unproven sequence; pass --genesis", file=sys.stderr)
    if account.auth_key != public_key:
        raise WalletError(
            f"this key ({public_key.hex()}) is not the account's current key "
            f"({account.auth_key.hex()}): it was rotated"
        )

    chain_id = info.chain_id if args.chain_id is None else args.chain_id
    body = ledger_pb2.TransactionBody(
        chain_id=chain_id,
        sender=sender,
        public_key=public_key,
        sequence=account.next_sequence,
        expiry_height=base_height + EXPIRY_BLOCKS,
        max_fee=max_fee,
        transfer=ledger_pb2.Transfer(to=to, amount=amount, memo=memo),
    )
    body_bytes = body.SerializeToString(deterministic=True)
    # The node accepts only the canonical encoding. Check ours three ways:
    # it decodes and re-encodes to itself, and it equals the encoding written
    # out by hand above.
    again = ledger_pb2.TransactionBody.FromString(body_bytes)
    if again.SerializeToString(deterministic=True) != body_bytes or again != body:
        raise WalletError("internal: the body does not round-trip through its encoding")
    expected = canonical_transfer_body(
        chain_id, sender, public_key, account.next_sequence,
        base_height + EXPIRY_BLOCKS, max_fee, to, amount, memo,
    )
    if expected != body_bytes:
        raise WalletError(
            "internal: protobuf's encoding differs from the canonical one:\n"
            f"  protobuf  {body_bytes.hex()}\n  canonical {expected.hex()}"
        )
    signature = key.sign(TX_SIGNATURE_PREFIX + body_bytes)
    identifier = tx_id(body_bytes, signature)
    print(f"tx id: {identifier.hex()}")
    print(
        f"paying {format_yuan(amount)} yuan from {address_text(sender)} to {address_text(to)} "
        f"(sequence {account.next_sequence}, chain {chain_id})"
    )
    response = call(
        "SubmitTransaction",
        gateway.SubmitTransaction,
        gateway_pb2.SubmitTransactionRequest(
            transaction=ledger_pb2.SignedTransaction(body=body_bytes, signature=signature),
            wait_for_commit=True,
            wait_timeout_ms=COMMIT_WAIT_MS,
        ),
        COMMIT_WAIT_MS / 1000 + 15,
    )
    if response.tx_id != identifier:
        raise WalletError(
            f"the node names the transaction {response.tx_id.hex()}, not {identifier.hex()}: "
            "the transaction id computation disagrees"
        )
    status = STATUS_NAMES.get(response.status, str(response.status))
    if response.status != gateway_pb2.TRANSACTION_STATUS_COMMITTED:
        if response.status == gateway_pb2.TRANSACTION_STATUS_EXPIRED:
            raise WalletError(f"transaction {identifier.hex()} expired before it was committed")
        raise WalletError(
            f"transaction {identifier.hex()} is {status} after {COMMIT_WAIT_MS // 1000} s; "
            "ask for it later (GetTransaction)"
        )
    receipt = response.receipt
    result = RESULT_NAMES.get(receipt.code, str(receipt.code))
    print(f"height: {response.height}")
    print(f"result: {result}")
    print(f"fee: {format_yuan(receipt.fee)}")
    if receipt.code != ledger_pb2.RESULT_CODE_OK:
        raise WalletError(
            f"transaction {identifier.hex()} was committed at height {response.height} "
            f"but did not take effect: {result}"
        )
    return 0


# ---------------------------------------------------------------------------
# The consensus crate's storage encoding (consensus/src/wire.rs, types.rs)
# ---------------------------------------------------------------------------

STORAGE_VERSION = 1
VALIDATORS_MAX = 256
PAYLOAD_BYTES_MAX = 8 * 1024 * 1024  # a generous bound; the node's is smaller
SYNC_BLOCKS_MAX = 1024


class Malformed(Exception):
    pass


class Reader:
    def __init__(self, data: bytes):
        self.data = data
        self.pos = 0

    def take(self, count: int) -> bytes:
        if self.pos + count > len(self.data):
            raise Malformed("truncated")
        out = self.data[self.pos : self.pos + count]
        self.pos += count
        return out

    def u8(self) -> int:
        return self.take(1)[0]

    def u16(self) -> int:
        return struct.unpack("<H", self.take(2))[0]

    def u32(self) -> int:
        return struct.unpack("<I", self.take(4))[0]

    def u64(self) -> int:
        return struct.unpack("<Q", self.take(8))[0]

    def length(self, limit: int, what: str) -> int:
        value = self.u32()
        if value > limit:
            raise Malformed(what)
        return value

    def present(self) -> bool:
        tag = self.u8()
        if tag not in (0, 1):
            raise Malformed("option tag")
        return tag == 1

    def finish(self) -> None:
        if self.pos != len(self.data):
            raise Malformed("trailing bytes")


@dataclass
class VoteData:
    epoch: int
    round: int
    block: bytes
    height: int
    parent: bytes
    parent_round: int
    encoded: bytes  # exactly the bytes read, which the vote signs

    def signing_digest(self, chain: bytes) -> bytes:
        """What a vote of the chain with tag `chain` signs (chain_tag)."""
        return hash_parts(CTX_CONSENSUS, [b"vote", chain, self.encoded])


@dataclass
class QuorumCert:
    vote: VoteData
    signatures: list[tuple[int, bytes]]


@dataclass
class Block:
    epoch: int
    round: int
    height: int
    parent: bytes
    justify: QuorumCert
    timestamp_ms: int
    proposer: int
    payload: bytes
    next_validators: Optional[list[bytes]]
    encoded: bytes  # exactly the bytes read (the block hash covers them)

    def hash(self) -> bytes:
        return hash_parts(CTX_CONSENSUS, [b"block", self.encoded])


@dataclass
class CommittedBlock:
    block: Block
    commit_qc: QuorumCert
    epoch_end: Optional[tuple[list[Block], QuorumCert]]


def read_vote_data(reader: Reader) -> VoteData:
    start = reader.pos
    epoch, rnd = reader.u64(), reader.u64()
    block = reader.take(32)
    height = reader.u64()
    parent = reader.take(32)
    parent_round = reader.u64()
    return VoteData(epoch, rnd, block, height, parent, parent_round, reader.data[start : reader.pos])


def read_qc(reader: Reader) -> QuorumCert:
    vote = read_vote_data(reader)
    count = reader.length(VALIDATORS_MAX, "too many signatures")
    signatures = [(reader.u16(), reader.take(64)) for _ in range(count)]
    return QuorumCert(vote, signatures)


def read_block(reader: Reader) -> Block:
    start = reader.pos
    epoch, rnd, height = reader.u64(), reader.u64(), reader.u64()
    parent = reader.take(32)
    justify = read_qc(reader)
    timestamp_ms = reader.u64()
    proposer = reader.u16()
    payload = reader.take(reader.length(PAYLOAD_BYTES_MAX, "payload too large"))
    next_validators = None
    if reader.present():
        count = reader.length(VALIDATORS_MAX, "too many validators")
        next_validators = [reader.take(32) for _ in range(count)]
    return Block(
        epoch, rnd, height, parent, justify, timestamp_ms, proposer, payload,
        next_validators, reader.data[start : reader.pos],
    )


def decode_committed_block(data: bytes) -> CommittedBlock:
    reader = Reader(data)
    if reader.u8() != STORAGE_VERSION:
        raise Malformed("unknown storage version")
    block = read_block(reader)
    commit_qc = read_qc(reader)
    epoch_end = None
    if reader.present():
        count = reader.length(SYNC_BLOCKS_MAX, "too many blocks")
        blocks = [read_block(reader) for _ in range(count)]
        epoch_end = (blocks, read_qc(reader))
    reader.finish()
    return CommittedBlock(block, commit_qc, epoch_end)


# ---------------------------------------------------------------------------
# The state tree proof (ledger/src/tree.rs verify_proof)
# ---------------------------------------------------------------------------

BUCKET_BITS = 16
BUCKETS = 1 << BUCKET_BITS
ACCOUNT_TAG = 1


def account_state_key(address: bytes) -> bytes:
    return bytes([ACCOUNT_TAG]) + address


def value_hash(value: bytes) -> bytes:
    return keyed(VALUE_KEY, value)


def leaf_hash(key: bytes, value: bytes) -> bytes:
    return keyed(LEAF_KEY, key + value)


def node_hash(left: bytes, right: bytes) -> bytes:
    if left == ZERO32 and right == ZERO32:
        return ZERO32
    return keyed(NODE_KEY, left + right)


def bucket_of(key_hash: bytes) -> int:
    return int.from_bytes(key_hash[:2], "big")


def bucket_hash(leaves: list[bytes]) -> bytes:
    if not leaves:
        return ZERO32
    level = leaves
    while len(level) > 1:
        level = [
            node_hash(level[i], level[i + 1]) if i + 1 < len(level) else level[i]
            for i in range(0, len(level), 2)
        ]
    return level[0]


def verify_state_proof(root: bytes, proof, key: bytes) -> Optional[bytes]:
    """Returns the proved value (None: proved absent); raises CheckFailed."""
    if len(proof.root) != 32:
        raise CheckFailed("proof", "the proof's root is not 32 bytes")
    if proof.root != root:
        raise CheckFailed(
            "proof", f"the proof is against root {proof.root.hex()}, not the certified {root.hex()}"
        )
    if proof.key != key:
        raise CheckFailed("proof", "the proof is for another state key")
    if len(proof.siblings) != BUCKET_BITS:
        raise CheckFailed("proof", f"a proof has exactly 16 siblings, this one {len(proof.siblings)}")
    k = derive_key(CTX_STATE_KEY, key)
    bucket = bucket_of(k)
    leaves, found, previous = [], None, None
    for entry in proof.bucket:
        if len(entry.key_hash) != 32 or len(entry.value_hash) != 32:
            raise CheckFailed("proof", "a bucket entry's hash is not 32 bytes")
        if bucket_of(entry.key_hash) != bucket:
            raise CheckFailed("proof", "a bucket entry is from another bucket")
        if previous is not None and previous >= entry.key_hash:
            raise CheckFailed("proof", "the bucket entries are not strictly ascending")
        previous = entry.key_hash
        leaves.append(leaf_hash(entry.key_hash, entry.value_hash))
        if entry.key_hash == k:
            found = entry.value_hash
    has_value = proof.HasField("value")
    if has_value and found is None:
        raise CheckFailed("proof", "the proof has a value but the key is not in its bucket")
    if not has_value and found is not None:
        raise CheckFailed("proof", "the proof claims absence but the key is in its bucket")
    if has_value and value_hash(proof.value) != found:
        raise CheckFailed("proof", "the proved value does not match its hash in the bucket")
    node = BUCKETS + bucket
    running = bucket_hash(leaves)
    for sibling in proof.siblings:
        if len(sibling) != 32:
            raise CheckFailed("proof", "a sibling is not 32 bytes")
        running = node_hash(running, sibling) if node % 2 == 0 else node_hash(sibling, running)
        node //= 2
    if running != root:
        raise CheckFailed("proof", "the Merkle path does not lead to the certified state root")
    return proof.value if has_value else None


# ---------------------------------------------------------------------------
# Checking an account answer (cli/src/proof.rs, docs/API.md)
# ---------------------------------------------------------------------------


class CheckFailed(WalletError):
    def __init__(self, check: str, reason: str):
        super().__init__(f"the account answer does not check out [{check}]: {reason}")
        self.check = check


@dataclass
class Checked:
    height: int
    state_root: bytes
    account: Optional[ledger_pb2.Account]
    certified_by: int
    signers: int
    validators: int


def genesis_validators(path: str) -> list[bytes]:
    try:
        with open(path, "rb") as file:
            document = tomllib.load(file)
    except OSError as error:
        raise WalletError(f"reading the genesis file {path}: {error.strerror}") from None
    except tomllib.TOMLDecodeError as error:
        raise WalletError(f"{path} is not TOML: {error}") from None
    cards = document.get("validators")
    if not isinstance(cards, list) or not cards:
        raise WalletError(f"{path} has no [[validators]]: is it a yuchain genesis file?")
    keys = []
    for index, card in enumerate(cards):
        text = card.get("consensus_public_key") if isinstance(card, dict) else None
        try:
            key = bytes.fromhex(text) if isinstance(text, str) else b""
        except ValueError:
            key = b""
        if len(key) != 32:
            raise WalletError(
                f"{path}: validators[{index}].consensus_public_key is not 64 hex digits"
            )
        keys.append(key)
    if len(set(keys)) != len(keys):
        raise WalletError(f"{path}: a validator key appears twice")
    return keys


def chain_tag(chain_id: str) -> bytes:
    """ChainTag::of: every consensus signature names its chain, so a
    certificate of another chain with the same validator keys is refused."""
    return hash_parts(CTX_CONSENSUS, [b"chain", chain_id.encode()])


def genesis_chain_id(path: str) -> str:
    try:
        with open(path, "rb") as file:
            document = tomllib.load(file)
    except (OSError, tomllib.TOMLDecodeError) as error:
        raise WalletError(f"reading the genesis file {path}: {error}") from None
    chain_id = document.get("ledger", {}).get("chain_id")
    if not isinstance(chain_id, str):
        raise WalletError(f"{path} has no [ledger] chain_id: is it a yuchain genesis file?")
    return chain_id


def quorum(n: int) -> int:
    """n - f with f the largest such that 3f + 1 <= n (2f + 1 when n = 3f + 1)."""
    return n - (n - 1) // 3


def verify_qc(qc: QuorumCert, keys: list[bytes], chain: bytes, epoch: int) -> None:
    if qc.vote.epoch != epoch:
        raise CheckFailed("certificate", f"it is of epoch {qc.vote.epoch}, not {epoch}")
    if qc.vote.round == 0:
        raise CheckFailed("certificate", "round 0 is an epoch root, which nobody signs")
    previous = -1
    for signer, _ in qc.signatures:
        if signer >= len(keys):
            raise CheckFailed("certificate", f"signer {signer} is not one of {len(keys)} validators")
        if signer <= previous:
            raise CheckFailed("certificate", "the signers are not strictly increasing")
        previous = signer
    needed = quorum(len(keys))
    if len(qc.signatures) < needed:
        raise CheckFailed(
            "certificate",
            f"{len(qc.signatures)} signers, a quorum of {len(keys)} validators is {needed}",
        )
    digest = qc.vote.signing_digest(chain)
    for signer, signature in qc.signatures:
        try:
            Ed25519PublicKey.from_public_bytes(keys[signer]).verify(signature, digest)
        except InvalidSignature:
            raise CheckFailed(
                "certificate", f"the signature of validator {signer} is not valid"
            ) from None
        except ValueError as error:
            raise CheckFailed("certificate", f"validator {signer}'s key: {error}") from None


def check_account(
    answer: gateway_pb2.GetAccountResponse,
    address: bytes,
    keys: list[bytes],
    chain_id: str,
    epoch: int = 0,
) -> Checked:
    # 1. Decode the committed block.
    try:
        committed = decode_committed_block(answer.certified)
    except Malformed as error:
        raise CheckFailed("decode", f"the certified block does not decode: {error}") from None
    qc = committed.commit_qc
    # 3. The certificate: a quorum of the pinned validators signed its vote.
    verify_qc(qc, keys, chain_tag(chain_id), epoch)
    # 2. The vote is for the block or for a child of it.
    block_hash = committed.block.hash()
    if qc.vote.block != block_hash and qc.vote.parent != block_hash:
        raise CheckFailed("block hash", "the certificate signs neither the block nor a child of it")
    # 4. The block claims the executed state of the answer's height.
    try:
        payload = node_pb2.BlockPayload.FromString(committed.block.payload)
    except Exception:
        raise CheckFailed("payload", "the certified block's payload does not decode") from None
    if not payload.HasField("executed"):
        raise CheckFailed("payload", "the certified block claims no executed state")
    claim = payload.executed
    if claim.height != answer.height:
        raise CheckFailed(
            "height",
            f"the certified block claims height {claim.height}, the answer says {answer.height}",
        )
    if len(claim.state_root) != 32:
        raise CheckFailed("payload", "the claimed state root is not 32 bytes")
    # 5. The proof leads from this account's key to that root.
    if not answer.HasField("proof"):
        raise CheckFailed("proof", "the answer has no proof")
    proved = verify_state_proof(claim.state_root, answer.proof, account_state_key(address))
    # 6. The answer's account is the proved record.
    has_account = answer.HasField("account")
    account = None
    if proved is None and has_account:
        raise CheckFailed("account", "the answer shows an account the proof proves absent")
    if proved is not None and not has_account:
        raise CheckFailed("account", "the answer shows no account, but the proof proves one")
    if proved is not None:
        try:
            record = ledger_pb2.Account.FromString(proved)
        except Exception:
            raise CheckFailed("account", "the proved record is not an account") from None
        if record != answer.account:
            raise CheckFailed("account", "the account in the answer is not the record the proof proves")
        if record.address != address:
            raise CheckFailed("account", "the proved account has another address")
        account = record
    return Checked(
        height=answer.height,
        state_root=claim.state_root,
        account=account,
        certified_by=committed.block.height,
        signers=len(qc.signatures),
        validators=len(keys),
    )


# ---------------------------------------------------------------------------
# Tampering, to show that a changed answer is refused (--tamper)
# ---------------------------------------------------------------------------

TAMPERS = ("balance", "hide-account", "height", "sibling", "signature", "signer", "payload", "root")


def tamper(answer: gateway_pb2.GetAccountResponse, how: str) -> gateway_pb2.GetAccountResponse:
    bad = gateway_pb2.GetAccountResponse()
    bad.CopyFrom(answer)
    if how == "balance":
        bad.account.balance += 1
    elif how == "hide-account":
        bad.ClearField("account")
    elif how == "height":
        bad.height += 1
    elif how == "sibling":
        bad.proof.siblings[3] = bytes([9]) * 32
    elif how == "root":
        bad.proof.root = bytes([6]) * 32
    elif how in ("signature", "signer", "payload"):
        committed = decode_committed_block(answer.certified)
        data = bytearray(answer.certified)
        # Offsets into the certified bytes: the commit certificate follows
        # the block, which follows the version byte.
        qc_start = 1 + len(committed.block.encoded)
        signatures_start = qc_start + len(committed.commit_qc.vote.encoded) + 4
        if how == "signature":
            data[signatures_start + 2 + 10] ^= 1  # a bit of the first signature
        elif how == "signer":
            # Replace the first signature by the second one's: a forged share.
            first = signatures_start + 2
            second = signatures_start + 66 + 2
            data[first : first + 64] = data[second : second + 64]
        else:
            # The last byte of the payload (of the claimed state root),
            # keeping its length: the block hash changes with it.
            block = committed.block
            payload_end = 1 + len(block.encoded) - 1
            if block.next_validators is not None:
                payload_end -= 4 + 32 * len(block.next_validators)
            data[payload_end - 1] ^= 1
        bad.certified = bytes(data)
    else:
        raise WalletError(f"unknown --tamper {how!r}; one of {', '.join(TAMPERS)}")
    return bad


# ---------------------------------------------------------------------------
# balance, verify-proof, new-key, address
# ---------------------------------------------------------------------------


def resolve_address(args: argparse.Namespace) -> bytes:
    if args.address:
        return parse_address(args.address)
    if args.key:
        return address_of(public_bytes(load_key(args.key)))
    raise WalletError("say whose balance: --key FILE or --address ADDRESS")


def print_checked(checked: Checked, address: bytes) -> None:
    print(f"address: {address_text(address)}")
    if checked.account is None:
        print(f"no account at height {checked.height} (proved absent)")
    else:
        print(f"balance: {format_yuan(checked.account.balance)} yuan")
        print(f"next sequence: {checked.account.next_sequence}")
    print(f"state root: {checked.state_root.hex()}")
    print(
        f"verified by {checked.signers} of {checked.validators} validators at height "
        f"{checked.height} (certificate of consensus block {checked.certified_by})"
    )


def cmd_balance(args: argparse.Namespace) -> int:
    address = resolve_address(args)
    keys = genesis_validators(args.genesis)
    gateway = connect(args)
    wait_ms = 30_000
    answer = call(
        "GetAccount",
        gateway.GetAccount,
        gateway_pb2.GetAccountRequest(
            address=address, min_height=args.min_height, wait_timeout_ms=wait_ms
        ),
        wait_ms / 1000 + 15,
    )
    if args.save:
        Path(args.save).write_bytes(answer.SerializeToString())
    if args.tamper:
        answer = tamper(answer, args.tamper)
        print(f"tampered with the answer ({args.tamper}); it must be refused", file=sys.stderr)
    checked = check_account(answer, address, keys, genesis_chain_id(args.genesis))
    if checked.height < args.min_height:
        raise CheckFailed(
            "height", f"the answer is of height {checked.height}, below --min-height {args.min_height}"
        )
    print_checked(checked, address)
    return 0


def cmd_verify_proof(args: argparse.Namespace) -> int:
    address = parse_address(args.address)
    keys = genesis_validators(args.genesis)
    try:
        data = Path(args.file).read_bytes()
    except OSError as error:
        raise WalletError(f"reading {args.file}: {error.strerror}") from None
    try:
        answer = gateway_pb2.GetAccountResponse.FromString(data)
    except Exception:
        raise WalletError(f"{args.file} is not a saved GetAccount answer") from None
    print_checked(check_account(answer, address, keys, genesis_chain_id(args.genesis)), address)
    return 0


def cmd_history(args: argparse.Namespace) -> int:
    """ListAccountHistory, newest first; each entry's id is recomputed."""
    address = resolve_address(args)
    gateway = connect(args)
    token, shown = "", 0
    while shown < args.limit:
        page = call(
            "ListAccountHistory",
            gateway.ListAccountHistory,
            gateway_pb2.ListAccountHistoryRequest(
                address=address, page_size=min(args.limit - shown, 500), page_token=token
            ),
            15,
        )
        for entry in page.entries:
            signed = entry.transaction
            if tx_id(signed.body, signed.signature) != entry.tx_id:
                raise WalletError(f"history entry {entry.tx_id.hex()}: its id is not its transaction's")
            body = ledger_pb2.TransactionBody.FromString(signed.body)
            action = body.WhichOneof("action") or "?"
            detail = ""
            if action == "transfer":
                direction = "to" if body.sender == address else "from"
                other = body.transfer.to if body.sender == address else body.sender
                detail = f" {format_yuan(body.transfer.amount)} {direction} {address_text(other)}"
            result = RESULT_NAMES.get(entry.receipt.code, str(entry.receipt.code))
            print(f"{entry.height}:{entry.index} {entry.tx_id.hex()} {action}{detail} {result}")
            shown += 1
        token = page.next_page_token
        if not token or not page.entries:
            break
    if shown == 0:
        print("no transactions")
    return 0


def cmd_new_key(args: argparse.Namespace) -> int:
    key = save_new_key(args.out)
    public_key = public_bytes(key)
    print(f"public key: {public_key.hex()}")
    print(f"address: {address_text(address_of(public_key))}")
    print(f"key file: {args.out} (PKCS#8 PEM, keep it secret)")
    return 0


def cmd_address(args: argparse.Namespace) -> int:
    public_key = public_bytes(load_key(args.key))
    print(f"public key: {public_key.hex()}")
    print(f"address: {address_text(address_of(public_key))}")
    return 0


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(
        prog="wallet.py",
        description="A yuchain wallet in Python: keys, payments, and balances checked "
        "against the validators' keys.",
    )
    commands = top.add_subparsers(dest="command", required=True, metavar="COMMAND")

    new_key = commands.add_parser("new-key", help="create an ed25519 key file (PKCS#8 PEM)")
    new_key.add_argument("--out", required=True, metavar="FILE", help="the new key file (never overwritten)")
    new_key.set_defaults(run=cmd_new_key)

    address = commands.add_parser("address", help="show a key's public key and address")
    address.add_argument("--key", required=True, metavar="FILE")
    address.set_defaults(run=cmd_address)

    pay = commands.add_parser("pay", help="send a transfer and wait for its commit")
    pay.add_argument("--node", required=True, metavar="HOST:PORT", help="a validator's gateway")
    pay.add_argument("--tls-ca", metavar="PEM", help="for an https:// node: the CA to trust")
    pay.add_argument("--tls-domain", metavar="NAME", help="for an https:// node: the name its certificate carries")
    pay.add_argument("--key", required=True, metavar="FILE", help="the sender's key file")
    pay.add_argument("--to", required=True, metavar="ADDRESS", help="the recipient (yu1...)")
    pay.add_argument("--amount", required=True, metavar="YUAN", help="e.g. 12.34")
    pay.add_argument("--memo", default="", help="free text, at most 256 bytes")
    pay.add_argument("--max-fee", default="10.00", metavar="YUAN", help="the most fee to pay (default 10.00)")
    # For tests: sign for another chain id, which the node must refuse.
    pay.add_argument(
        "--genesis", metavar="GENESIS.toml",
        help="pins the validators' keys: sign with the certified sequence (recommended)",
    )
    pay.add_argument("--chain-id", help=argparse.SUPPRESS)
    pay.set_defaults(run=cmd_pay)

    balance = commands.add_parser("balance", help="an account's balance, verified")
    balance.add_argument("--node", required=True, metavar="HOST:PORT")
    balance.add_argument("--tls-ca", metavar="PEM", help="for an https:// node: the CA to trust")
    balance.add_argument("--tls-domain", metavar="NAME", help="for an https:// node: the name its certificate carries")
    who = balance.add_mutually_exclusive_group(required=True)
    who.add_argument("--key", metavar="FILE")
    who.add_argument("--address", metavar="ADDRESS")
    balance.add_argument("--genesis", required=True, metavar="GENESIS.toml", help="pins the validators' keys")
    balance.add_argument("--min-height", type=int, default=0, metavar="H", help="wait until the certified height reaches H")
    balance.add_argument("--save", metavar="FILE", help="also save the raw answer (for verify-proof)")
    balance.add_argument("--tamper", choices=TAMPERS, help=argparse.SUPPRESS)
    balance.set_defaults(run=cmd_balance)

    history = commands.add_parser("history", help="an account's transactions, newest first")
    history.add_argument("--node", required=True, metavar="HOST:PORT")
    history.add_argument("--tls-ca", metavar="PEM", help="for an https:// node: the CA to trust")
    history.add_argument("--tls-domain", metavar="NAME", help="for an https:// node: the name its certificate carries")
    whose = history.add_mutually_exclusive_group(required=True)
    whose.add_argument("--key", metavar="FILE")
    whose.add_argument("--address", metavar="ADDRESS")
    history.add_argument("--limit", type=int, default=20, metavar="N")
    history.set_defaults(run=cmd_history)

    verify = commands.add_parser("verify-proof", help="check a saved GetAccount answer offline")
    verify.add_argument("file", metavar="FILE", help="saved by balance --save or `yuchain wallet balance --save`")
    verify.add_argument("--address", required=True, metavar="ADDRESS")
    verify.add_argument("--genesis", required=True, metavar="GENESIS.toml")
    verify.set_defaults(run=cmd_verify_proof)
    return top


def main(argv: Optional[list[str]] = None) -> int:
    args = parser().parse_args(argv)
    try:
        return args.run(args)
    except WalletError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
