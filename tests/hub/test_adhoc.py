"""XEP-0050 ad-hoc commands: the session table (sans-I/O, time passed in) at its limits, and the
service: change password, XEP-0133 announce / online users for operators, the §6 errors, disco."""

from __future__ import annotations

from xml.etree.ElementTree import Element

import pytest

from interlink.errors import StanzaError, StreamErrorCondition
from interlink.hub.addressing import Addressing
from interlink.hub.adhoc import AdhocLimits, AdhocService, CommandSessions
from interlink.hub.adhoc_commands import CHANGE_PASSWORD, standard_commands
from interlink.hub.router import DomainServices
from interlink.hub.session import SessionRegistry
from interlink.storage import Storage
from interlink.xmpp.ext.commands import COMMAND, Action, parse_request
from interlink.xmpp.jid import JID
from interlink.xmpp.sasl.credentials import (
    SCRAM_SHA_256,
    PasswordRules,
    check_password,
    password_problem,
)
from interlink.xmpp.stanza import Iq, IqType, Message
from tests.hub.test_pep import iq
from tests.hubkit import (
    CREDS,
    DOMAIN,
    Client,
    Clock,
    DomainServicesFactory,
    HubKit,
    running_hub,
)

CMD = "http://jabber.org/protocol/commands"
ADMIN = "http://jabber.org/protocol/admin"
DISCO_INFO = "http://jabber.org/protocol/disco#info"
DISCO_ITEMS = "http://jabber.org/protocol/disco#items"
STANZAS = "{urn:ietf:params:xml:ns:xmpp-stanzas}"
ALICE = JID.parse(f"alice@{DOMAIN}/a")
DEFAULT_RULES = PasswordRules()


# -- the session table -------------------------------------------------------------------------
def app_condition(exc: pytest.ExceptionInfo[StanzaError]) -> tuple[str, str | None]:
    app = exc.value.app_condition
    return str(exc.value.condition), None if app is None else app.replace(f"{{{CMD}}}", "")


def test_sessions_per_account_are_capped_at_the_limit() -> None:
    table = CommandSessions(AdhocLimits(max_sessions_per_account=2, session_lifetime=60))
    first = table.open(ALICE, "n", 0.0)
    table.open(ALICE.bare.with_resource("b"), "n", 0.0)  # every resource counts
    with pytest.raises(StanzaError) as exc:
        table.open(ALICE, "n", 1.0)
    assert app_condition(exc) == ("resource-constraint", None)
    table.open(JID.parse(f"bob@{DOMAIN}/x"), "n", 1.0)  # another account is not affected
    table.close(first)
    table.open(ALICE, "n", 1.0)  # closing makes room
    assert table.live(ALICE.bare) == 2


def test_a_session_expires_at_its_lifetime_and_is_then_forgotten() -> None:
    table = CommandSessions(AdhocLimits(max_sessions_per_account=1, session_lifetime=60))
    s = table.open(ALICE, "n", 0.0)
    assert table.find(ALICE, "n", s.id, 59.999) is s
    with pytest.raises(StanzaError) as exc:
        table.find(ALICE, "n", s.id, 60.0)
    assert app_condition(exc) == ("not-allowed", "session-expired")
    table.open(ALICE, "n", 60.0)  # the expired one no longer counts against the cap
    with pytest.raises(StanzaError) as exc:
        table.find(ALICE, "n", s.id, 119.9)
    assert app_condition(exc) == ("not-allowed", "session-expired")  # remembered a lifetime
    table.expire(120.0)
    with pytest.raises(StanzaError) as exc:
        table.find(ALICE, "n", s.id, 120.0)
    assert app_condition(exc) == ("bad-request", "bad-sessionid")  # then forgotten


def test_a_removed_accounts_sessions_are_forgotten_and_only_its() -> None:
    table = CommandSessions(AdhocLimits(max_sessions_per_account=2, session_lifetime=60))
    mine = table.open(ALICE, "n", 0.0)
    table.open(ALICE.bare.with_resource("b"), "n", 0.0)
    bob = JID.parse(f"bob@{DOMAIN}/x")
    theirs = table.open(bob, "n", 0.0)
    table.forget_account(ALICE.bare)
    assert (table.live(ALICE.bare), table.live(bob.bare)) == (0, 1)
    with pytest.raises(StanzaError) as exc:
        table.find(ALICE, "n", mine.id, 1.0)
    assert app_condition(exc) == ("bad-request", "bad-sessionid")
    assert table.find(bob, "n", theirs.id, 1.0) is theirs
    table.close(mine)  # a step that was under way ends: nothing is counted twice
    assert table.live(ALICE.bare) == 0


def test_a_session_belongs_to_its_requester_and_node() -> None:
    table = CommandSessions(AdhocLimits())
    s = table.open(ALICE, "n", 0.0)
    for who, node, sid in (
        (ALICE.bare.with_resource("other"), "n", s.id),
        (ALICE, "other-node", s.id),
        (ALICE, "n", "no-such-id"),
    ):
        with pytest.raises(StanzaError) as exc:
            table.find(who, node, sid, 1.0)
        assert app_condition(exc) == ("bad-request", "bad-sessionid")


def test_limits_must_be_positive() -> None:
    for bad in (
        {"max_sessions_per_account": 0},
        {"session_lifetime": 0.0},
        {"online_users_list_max": 0},
    ):
        with pytest.raises(ValueError, match=r"adhoc|at least"):
            AdhocLimits(**bad)


def test_an_unknown_action_is_malformed() -> None:
    el = Element(COMMAND, {"node": "n", "action": "jump"})
    with pytest.raises(StanzaError) as exc:
        parse_request(el)
    assert app_condition(exc) == ("bad-request", "malformed-action")
    assert parse_request(Element(COMMAND, {"node": "n"})).action is Action.EXECUTE


def test_password_rules_at_their_boundaries() -> None:
    rules = PasswordRules(min_length=3, max_length=5)
    assert password_problem("abc", rules) is None
    assert password_problem("abcde", rules) is None
    assert password_problem("ab", rules) == "the password needs at least 3 characters"
    assert password_problem("abcdef", rules) == "the password holds at most 5 characters"
    assert password_problem("", PasswordRules()) == "the password must not be empty"
    assert "SASLprep" in (password_problem("a\x07bc", rules) or "")


# -- the service -------------------------------------------------------------------------------
def adhoc_factory(
    limits: AdhocLimits, rules: PasswordRules = DEFAULT_RULES
) -> DomainServicesFactory:
    def build(
        storage: Storage, sessions: SessionRegistry, addressing: Addressing, clock: Clock
    ) -> DomainServices:
        service = AdhocService(addressing, clock, limits, frozenset({JID.parse(f"op@{DOMAIN}")}))
        service.registry.extend(
            standard_commands(
                accounts=storage.accounts,
                sessions=sessions,
                addressing=addressing,
                limits=limits,
                rules=rules,
                scram_iterations=4096,
            )
        )
        return DomainServices(
            handlers={COMMAND: service.handle_iq},
            info=(service.add_feature,),
            nodes=service.disco_nodes(),
        )

    return build


def command(node: str, *, action: str = "", sid: str = "", form: str = "") -> str:
    attrs = f" node='{node}'"
    if action:
        attrs += f" action='{action}'"
    if sid:
        attrs += f" sessionid='{sid}'"
    return f"<command xmlns='{CMD}'{attrs}>{form}</command>"


def submitted(form_type: str, **fields: str | list[str]) -> str:
    body = f"<field var='FORM_TYPE'><value>{form_type}</value></field>"
    for var, value in fields.items():
        values = value if isinstance(value, list) else [value]
        body += f"<field var='{var.replace('_', '-')}'>" + "".join(
            f"<value>{v}</value>" for v in values
        )
        body += "</field>"
    return f"<x xmlns='jabber:x:data' type='submit'>{body}</x>"


async def run(client: Client, body: str, kind: str = "set") -> Iq:
    return await iq(client, body, to=DOMAIN, kind=kind)


def result(answer: Iq) -> Element:
    assert answer.type is IqType.RESULT, answer
    (cmd,) = answer.payload
    return cmd


def error_of(answer: Iq) -> tuple[str, str | None]:
    assert answer.type is IqType.ERROR, answer
    err = answer.find("{jabber:client}error")
    assert err is not None
    names = [c.tag for c in err]
    app = next((n.replace(f"{{{CMD}}}", "") for n in names if n.startswith(f"{{{CMD}}}")), None)
    return names[0].replace(STANZAS, ""), app


def values(cmd: Element, var: str) -> list[str]:
    field = cmd.find(f"{{jabber:x:data}}x/{{jabber:x:data}}field[@var='{var}']")
    assert field is not None
    return [v.text or "" for v in field.findall("{jabber:x:data}value")]


async def hub_with_commands(kit: HubKit) -> tuple[Client, Client]:
    await kit.account("alice")
    await kit.account("op")
    return await kit.connect("alice", "a"), await kit.connect("op", "o")


async def test_change_password_ends_the_other_sessions() -> None:
    async with running_hub(domain_services=adhoc_factory(AdhocLimits())) as kit:
        alice, _ = await hub_with_commands(kit)
        other = await kit.connect("alice", "b")
        first = result(await run(alice, command(CHANGE_PASSWORD)))
        assert first.get("status") == "executing"
        sid = first.get("sessionid") or ""
        assert values(first, "password") == []
        actions = first.find(f"{{{CMD}}}actions")
        assert actions is not None
        assert actions.get("execute") == "complete"
        # a mismatch is bad-payload and the stage stays open
        mismatch = submitted(CHANGE_PASSWORD, password="new-secret", password_confirm="other")
        assert error_of(await run(alice, command(CHANGE_PASSWORD, sid=sid, form=mismatch))) == (
            "bad-request",
            "bad-payload",
        )
        assert error_of(await run(alice, command(CHANGE_PASSWORD, sid=sid, action="prev"))) == (
            "bad-request",
            "bad-action",
        )
        good = submitted(CHANGE_PASSWORD, password="new-secret", password_confirm="new-secret")
        done = result(await run(alice, command(CHANGE_PASSWORD, sid=sid, form=good)))
        assert done.get("status") == "completed"
        note = done.find(f"{{{CMD}}}note")
        assert note is not None
        assert "1 other session" in (note.text or "")
        creds = await kit.hub.ctx.storage.accounts.get_credentials(f"alice@{DOMAIN}")
        assert creds is not None
        scram = creds.for_mechanism(SCRAM_SHA_256)
        assert scram is not None
        assert check_password(scram, SCRAM_SHA_256, "new-secret")
        assert not check_password(scram, SCRAM_SHA_256, "pw")
        assert other.port.terminated is not None
        assert other.port.terminated.condition is StreamErrorCondition.RESET
        assert not alice.port.closed  # the session that changed it stays
        # the session is closed: continuing it is bad-sessionid
        assert error_of(await run(alice, command(CHANGE_PASSWORD, sid=sid, form=good))) == (
            "bad-request",
            "bad-sessionid",
        )


async def test_change_password_applies_the_password_rules() -> None:
    factory = adhoc_factory(AdhocLimits(), PasswordRules(min_length=8))
    async with running_hub(domain_services=factory) as kit:
        alice, _ = await hub_with_commands(kit)
        sid = result(await run(alice, command(CHANGE_PASSWORD))).get("sessionid") or ""
        short = submitted(CHANGE_PASSWORD, password="1234567", password_confirm="1234567")
        answer = await run(alice, command(CHANGE_PASSWORD, sid=sid, form=short))
        assert error_of(answer) == ("bad-request", "bad-payload")
        eight = submitted(CHANGE_PASSWORD, password="12345678", password_confirm="12345678")
        done = result(await run(alice, command(CHANGE_PASSWORD, sid=sid, form=eight)))
        assert done.get("status") == "completed"


async def test_cancel_and_the_session_cap_through_the_service() -> None:
    factory = adhoc_factory(AdhocLimits(max_sessions_per_account=1, session_lifetime=30))
    async with running_hub(domain_services=factory) as kit:
        alice, _ = await hub_with_commands(kit)
        sid = result(await run(alice, command(CHANGE_PASSWORD))).get("sessionid") or ""
        assert error_of(await run(alice, command(CHANGE_PASSWORD)))[0] == "resource-constraint"
        canceled = result(await run(alice, command(CHANGE_PASSWORD, sid=sid, action="cancel")))
        assert canceled.get("status") == "canceled"
        sid = result(await run(alice, command(CHANGE_PASSWORD))).get("sessionid") or ""
        kit.clock.now += 30
        good = submitted(CHANGE_PASSWORD, password="x", password_confirm="x")
        assert error_of(await run(alice, command(CHANGE_PASSWORD, sid=sid, form=good))) == (
            "not-allowed",
            "session-expired",
        )
        assert result(await run(alice, command(CHANGE_PASSWORD))).get("status") == "executing"
        assert error_of(await run(alice, command(CHANGE_PASSWORD, action="next"))) == (
            "bad-request",
            "bad-action",
        )


async def test_operator_commands_are_forbidden_to_others_and_unknown_nodes_not_found() -> None:
    async with running_hub(domain_services=adhoc_factory(AdhocLimits())) as kit:
        alice, _ = await hub_with_commands(kit)
        for node in (f"{ADMIN}#announce", f"{ADMIN}#get-online-users-list"):
            assert error_of(await run(alice, command(node)))[0] == "forbidden"
        assert error_of(await run(alice, command("urn:no:such")))[0] == "item-not-found"
        assert error_of(await run(alice, command(CHANGE_PASSWORD), kind="get"))[0] == (
            "bad-request"
        )


async def test_announce_reaches_every_online_session() -> None:
    async with running_hub(domain_services=adhoc_factory(AdhocLimits())) as kit:
        alice, op = await hub_with_commands(kit)
        await kit.account("bob")
        bob = await kit.connect("bob", "b")
        node = f"{ADMIN}#announce"
        sid = result(await run(op, command(node))).get("sessionid") or ""
        for c in (alice, bob):
            c.take()
        empty = submitted(ADMIN, subject="s", announcement="")
        assert error_of(await run(op, command(node, sid=sid, form=empty))) == (
            "bad-request",
            "bad-payload",
        )
        form = submitted(ADMIN, subject="Maintenance", announcement=["line one", "line two"])
        done = result(await run(op, command(node, sid=sid, form=form)))
        assert done.get("status") == "completed"
        for c in (alice, bob):
            (msg,) = [s for s in c.stanzas() if isinstance(s, Message)]
            assert str(msg.from_) == DOMAIN
            assert msg.find("{jabber:client}body") is not None
            body = msg.find("{jabber:client}body")
            assert body is not None
            assert body.text == "line one\nline two"


async def test_online_users_list_is_capped_and_counted() -> None:
    factory = adhoc_factory(AdhocLimits(online_users_list_max=2))
    async with running_hub(domain_services=factory) as kit:
        await hub_with_commands(kit)
        await kit.account("bob")
        await kit.connect("bob", "b")
        op = await kit.connect("op", "o2")  # two sessions, one user
        listed = result(await run(op, command(f"{ADMIN}#get-online-users-list")))
        assert listed.get("status") == "completed"
        assert values(listed, "onlineuserjids") == [f"alice@{DOMAIN}", f"bob@{DOMAIN}"]
        note = listed.find(f"{{{CMD}}}note")
        assert note is not None
        assert note.text == "the first 2 of 3 online users"
        num = result(await run(op, command(f"{ADMIN}#get-online-users-num")))
        assert values(num, "onlineusersnum") == ["3"]


async def test_disco_lists_the_commands_each_requester_may_run() -> None:
    async with running_hub(domain_services=adhoc_factory(AdhocLimits())) as kit:
        alice, op = await hub_with_commands(kit)
        info = await run(alice, f"<query xmlns='{DISCO_INFO}'/>", kind="get")
        features = [f.get("var") for f in info.payload[0] if f.tag.endswith("feature")]
        assert CMD in features

        async def listed(c: Client) -> list[str | None]:
            answer = await run(c, f"<query xmlns='{DISCO_ITEMS}' node='{CMD}'/>", kind="get")
            assert answer.type is IqType.RESULT, answer
            return [i.get("node") for i in answer.payload[0]]

        assert await listed(alice) == [CHANGE_PASSWORD]
        assert await listed(op) == [
            CHANGE_PASSWORD,
            f"{ADMIN}#announce",
            f"{ADMIN}#get-online-users-list",
            f"{ADMIN}#get-online-users-num",
        ]
        about = await run(alice, f"<query xmlns='{DISCO_INFO}' node='{CHANGE_PASSWORD}'/>", "get")
        (query,) = about.payload
        identity = query.find(f"{{{DISCO_INFO}}}identity")
        assert identity is not None
        assert (identity.get("category"), identity.get("type")) == ("automation", "command-node")
        unknown = await run(alice, f"<query xmlns='{DISCO_INFO}' node='urn:nope'/>", "get")
        assert unknown.type is IqType.ERROR


async def test_third_parties_and_other_services_have_no_commands_here() -> None:
    from tests.hub.test_policy import PROVIDER, PROVIDER_NAME, TP

    factory = adhoc_factory(AdhocLimits())
    async with running_hub(domain_services=factory, services=(DOMAIN, "other.test")) as kit:
        kit.approve(PROVIDER, PROVIDER_NAME)
        await kit.hub.ctx.storage.accounts.create(TP, CREDS, kit.clock())
        tp = await kit.connect(TP, "app")
        assert error_of(await run(tp, command(CHANGE_PASSWORD)))[0] == "forbidden"
        items = await run(tp, f"<query xmlns='{DISCO_ITEMS}' node='{CMD}'/>", kind="get")
        assert items.type is IqType.RESULT
        assert list(items.payload[0]) == []
        await kit.account("op")
        op = await kit.connect("op", "o")
        listed = result(await run(op, command(f"{ADMIN}#get-online-users-list")))
        assert values(listed, "onlineuserjids") == [f"op@{DOMAIN}"]  # no third party
        sid = result(await run(op, command(f"{ADMIN}#announce"))).get("sessionid") or ""
        tp.take()
        form = submitted(ADMIN, announcement="hello")
        await run(op, command(f"{ADMIN}#announce", sid=sid, form=form))
        assert [s for s in tp.stanzas() if isinstance(s, Message)] == []
        await kit.hub.ctx.storage.accounts.create("carol@other.test", CREDS, kit.clock())
        carol = await kit.connect("carol@other.test", "c")
        assert error_of(await run(carol, command(CHANGE_PASSWORD)))[0] == "forbidden"
        own = await iq(carol, command(CHANGE_PASSWORD), to="other.test")
        assert result(own).get("status") == "executing"
