"""Enlistment contract: token ids are recorded once, enlistments and un-enlistments are
all-or-nothing with typed outcomes, and key changes are kept in order."""

from __future__ import annotations

from interlink.storage import Storage
from interlink.storage.enlistment import CommitOutcome, InteropAccount, LoginState
from tests.storage.kit import T0

ISSUER = "examplechat"


def interop_account(subject: str, key: bytes = b"k" * 32, at: float = T0) -> InteropAccount:
    return InteropAccount(
        jid=f"{subject}@examplechat.interop.hub.test",
        provider_id=ISSUER,
        subject=subject,
        user_id=f"user-{subject}",
        identity_key=key,
        enlisted_at=T0,
        updated_at=at,
    )


async def enlist(
    storage: Storage, jti: str, account: InteropAccount, *, new_key: bool = True
) -> CommitOutcome:
    return await storage.enlistment.commit_enlistment(
        issuer=ISSUER,
        jti=jti,
        jti_expires_at=T0 + 300,
        account=account,
        new_key=new_key,
        now=account.updated_at,
    )


async def test_a_login_token_id_is_accepted_once_per_issuer(storage: Storage) -> None:
    repo = storage.enlistment
    assert not await repo.jti_seen(ISSUER, "j1")
    assert await repo.remember_jti(ISSUER, "j1", T0 + 300, T0)
    assert await repo.jti_seen(ISSUER, "j1")
    assert not await repo.remember_jti(ISSUER, "j1", T0 + 300, T0 + 1)
    assert await repo.remember_jti("otherchat", "j1", T0 + 300, T0)  # another issuer's id


async def test_login_state_answers_token_and_account_together(storage: Storage) -> None:
    repo = storage.enlistment
    alice = interop_account("alice")
    assert await repo.login_state(ISSUER, "j1", alice.jid) == LoginState(False, False)
    await repo.remember_jti(ISSUER, "j1", T0 + 300, T0)
    assert await enlist(storage, "j2", alice) is CommitOutcome.OK
    state = await repo.login_state(ISSUER, "j1", alice.jid)
    assert state.token_seen
    assert state.enlisted
    assert await repo.login_state(ISSUER, "j3", "bob@examplechat.interop.hub.test") == (
        False,
        False,
    )


async def test_an_enlistment_creates_the_account_and_its_key_history(storage: Storage) -> None:
    alice = interop_account("alice")
    assert await storage.enlistment.account(alice.jid) is None
    assert await enlist(storage, "j1", alice) is CommitOutcome.OK
    assert await storage.enlistment.account(alice.jid) == alice
    assert await storage.accounts.exists(alice.jid)
    assert await storage.enlistment.key_history(alice.jid) == [alice.identity_key]
    assert await storage.enlistment.jti_seen(ISSUER, "j1")


async def test_a_replayed_enlistment_changes_nothing(storage: Storage) -> None:
    alice = interop_account("alice")
    await enlist(storage, "j1", alice)
    intruder = interop_account("intruder")
    assert await enlist(storage, "j1", intruder) is CommitOutcome.REPLAYED
    assert await storage.enlistment.account(intruder.jid) is None
    assert not await storage.accounts.exists(intruder.jid)


async def test_re_enlistment_updates_and_records_only_new_keys(storage: Storage) -> None:
    first = interop_account("alice", b"1" * 32)
    await enlist(storage, "j1", first)
    same_key = interop_account("alice", b"1" * 32, at=T0 + 1)
    await enlist(storage, "j2", same_key, new_key=False)
    new_key = interop_account("alice", b"2" * 32, at=T0 + 2)
    await enlist(storage, "j3", new_key)
    assert await storage.enlistment.account(first.jid) == new_key
    assert await storage.enlistment.key_history(first.jid) == [b"1" * 32, b"2" * 32]


async def test_unenlistment_outcomes(storage: Storage) -> None:
    alice = interop_account("alice")
    await enlist(storage, "j1", alice)

    async def unenlist(jti: str, jid: str) -> CommitOutcome:
        return await storage.enlistment.commit_unenlistment(
            issuer=ISSUER, jti=jti, jti_expires_at=T0 + 300, jid=jid, now=T0
        )

    assert await unenlist("j1", alice.jid) is CommitOutcome.REPLAYED
    assert await storage.enlistment.account(alice.jid) is not None
    assert await unenlist("j2", alice.jid) is CommitOutcome.OK
    assert await storage.enlistment.account(alice.jid) is None
    assert not await storage.accounts.exists(alice.jid)
    assert await storage.enlistment.key_history(alice.jid) == []
    assert await unenlist("j3", alice.jid) is CommitOutcome.NOT_ENLISTED
    # The refused un-enlistment recorded nothing: its token id is still new.
    assert not await storage.enlistment.jti_seen(ISSUER, "j3")
