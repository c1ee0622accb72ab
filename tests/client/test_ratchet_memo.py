"""The ratchet clone and public-key memo change nothing but the time they take."""

from __future__ import annotations

import copy
import os
from typing import Any

import pytest
import twomemo.twomemo
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from doubleratchet import DoubleRatchet, diffie_hellman_ratchet, kdf_chain, symmetric_key_ratchet
from doubleratchet.aead import AuthenticationFailedException, DecryptionFailedException
from doubleratchet.recommended import diffie_hellman_ratchet_curve25519

from interlink.client import ratchet_memo

CONFIG: dict[str, Any] = {  # what twomemo uses for OMEMO 2 sessions
    "diffie_hellman_ratchet_class": diffie_hellman_ratchet_curve25519.DiffieHellmanRatchet,
    "root_chain_kdf": twomemo.twomemo.RootChainKDFImpl,
    "message_chain_kdf": twomemo.twomemo.MessageChainKDFImpl,
    "message_chain_constant": twomemo.twomemo.DoubleRatchetImpl.MESSAGE_CHAIN_CONSTANT,
    "dos_protection_threshold": 1000,
    "max_num_skipped_message_keys": 1000,
    "aead": twomemo.twomemo.AEADImpl,
}


@pytest.fixture(autouse=True)
def unpatched_after() -> Any:
    """The speed-ups are opt-in: no test leaves them on for the tests after it."""
    yield
    ratchet_memo.uninstall()


def test_nothing_is_patched_unless_asked_and_uninstall_restores() -> None:
    curve = diffie_hellman_ratchet_curve25519.DiffieHellmanRatchet
    assert "__deepcopy__" not in kdf_chain.KDFChain.__dict__
    original = curve.__dict__["_derive_pub"]
    assert ratchet_memo.install() is ratchet_memo.verified()
    ratchet_memo.uninstall()
    assert "__deepcopy__" not in kdf_chain.KDFChain.__dict__
    assert curve.__dict__["_derive_pub"] is original


def test_an_unverified_library_version_is_left_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ratchet_memo, "VERIFIED", frozenset({"0.0.1"}))
    assert ratchet_memo.install() is False
    assert "__deepcopy__" not in kdf_chain.KDFChain.__dict__


def _dh_ratchet(ratchet: DoubleRatchet) -> diffie_hellman_ratchet.DiffieHellmanRatchet:
    private = "_DoubleRatchet__diffie_hellman_ratchet"  # name-mangled: no public accessor
    value: diffie_hellman_ratchet.DiffieHellmanRatchet = vars(ratchet)[private]
    return value


async def conversation(seed_priv: bytes) -> tuple[list[str], list[bytes]]:
    """A fixed conversation (with out-of-order delivery and a failed decryption): the states
    after every step, and every ciphertext."""
    secret = b"\x07" * 32
    bob_priv = seed_priv
    bob_pub = (
        X25519PrivateKey.from_private_bytes(bob_priv)
        .public_key()
        .public_bytes(Encoding.Raw, PublicFormat.Raw)
    )
    states: list[str] = []
    wire: list[bytes] = []
    alice, first = await twomemo.twomemo.DoubleRatchetImpl.encrypt_initial_message(
        **CONFIG,
        shared_secret=secret,
        recipient_ratchet_pub=bob_pub,
        message=b"m0",
        associated_data=b"ad",
    )
    bob, plain = await twomemo.twomemo.DoubleRatchetImpl.decrypt_initial_message(
        **CONFIG,
        shared_secret=secret,
        own_ratchet_priv=bob_priv,
        message=first,
        associated_data=b"ad",
    )
    assert plain == b"m0"
    for turn in range(4):
        sender, receiver = (alice, bob) if turn % 2 == 0 else (bob, alice)
        sent = [await sender.encrypt_message(f"{turn}-{i}".encode(), b"ad") for i in range(3)]
        wire += [m.ciphertext for m in sent]
        ciphertext = sent[1].ciphertext
        tampered = sent[1]._replace(ciphertext=ciphertext[:-1] + bytes([ciphertext[-1] ^ 1]))
        with pytest.raises((AuthenticationFailedException, DecryptionFailedException)):
            await receiver.decrypt_message(tampered, b"ad")  # state untouched
        for i in (2, 0, 1):  # out of order: skipped keys
            assert await receiver.decrypt_message(sent[i], b"ad") == f"{turn}-{i}".encode()
            states.append(alice.model.model_dump_json() + bob.model.model_dump_json())
    return states, wire


async def test_the_patched_ratchets_behave_exactly_as_the_originals(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Same randomness in, same states and ciphertexts out, with and without the patches."""
    seed = os.urandom(32)
    keys = [os.urandom(32) for _ in range(40)]
    generated: list[bytes] = []

    def fixed_keys() -> bytes:
        key = keys[len(generated)]
        generated.append(key)
        return key

    curve = diffie_hellman_ratchet_curve25519.DiffieHellmanRatchet
    with monkeypatch.context() as patch:
        for cls in (*ratchet_memo._CLONED,):
            if "__deepcopy__" in cls.__dict__:
                patch.delattr(cls, "__deepcopy__")
        patch.setattr(curve, "_derive_pub", ratchet_memo._ORIGINAL_DERIVE_PUB)
        patch.setattr(curve, "_generate_priv", staticmethod(fixed_keys))
        plain_states, plain_wire = await conversation(seed)
    generated.clear()
    ratchet_memo.install()
    with monkeypatch.context() as patch:
        patch.setattr(curve, "_generate_priv", staticmethod(fixed_keys))
        fast_states, fast_wire = await conversation(seed)
    assert fast_states == plain_states
    assert fast_wire == plain_wire


async def test_a_clone_shares_nothing_that_can_change() -> None:
    ratchet_memo.install()
    secret = b"\x05" * 32
    bob_priv = os.urandom(32)
    bob_pub = (
        X25519PrivateKey.from_private_bytes(bob_priv)
        .public_key()
        .public_bytes(Encoding.Raw, PublicFormat.Raw)
    )
    alice, _ = await twomemo.twomemo.DoubleRatchetImpl.encrypt_initial_message(
        **CONFIG,
        shared_secret=secret,
        recipient_ratchet_pub=bob_pub,
        message=b"x",
        associated_data=b"",
    )
    original = _dh_ratchet(alice)
    before = original.model.model_dump_json()
    twin = copy.deepcopy(original)
    assert type(twin) is type(original)
    assert twin.model.model_dump_json() == before
    chains = [
        v
        for v in twin.__dict__.values()
        if isinstance(v, symmetric_key_ratchet.SymmetricKeyRatchet)
    ]
    assert chains
    for name, value in original.__dict__.items():
        if isinstance(value, (kdf_chain.KDFChain, symmetric_key_ratchet.SymmetricKeyRatchet)):
            assert twin.__dict__[name] is not value
    await twin.next_encryption_key()  # advance the clone's sending chain
    assert twin.model.model_dump_json() != before
    assert original.model.model_dump_json() == before


def test_the_public_key_memo_is_bounded_and_correct() -> None:
    ratchet_memo.install()
    ratchet_memo.derive_pub.clear()
    privs = [os.urandom(32) for _ in range(ratchet_memo.MAX_ENTRIES + 5)]
    for priv in privs:
        want = (
            X25519PrivateKey.from_private_bytes(priv)
            .public_key()
            .public_bytes(Encoding.Raw, PublicFormat.Raw)
        )
        assert ratchet_memo.derive_pub(priv) == want
        assert ratchet_memo.derive_pub(priv) == want  # from the memo
    assert len(ratchet_memo.derive_pub) == ratchet_memo.MAX_ENTRIES
