"""The sans-I/O XEP-0045 room (hub/groups/room.py): entering, leaving, roles and affiliations,
status codes, configuration, invitations, kicks and bans, destruction, self-ping, and the
errors XEP-0045 names for each refusal."""

from __future__ import annotations

from xml.etree.ElementTree import Element

import pytest

from interlink.errors import StanzaError, StanzaErrorCondition
from interlink.hub.groups.room import Member, Room, RoomLimits
from interlink.xmpp.ext import muc
from interlink.xmpp.ext.muc import Affiliation, Role, RoomConfig
from interlink.xmpp.jid import JID
from interlink.xmpp.stanza import Iq, IqType, Message, MessageType, Presence, PresenceType, Stanza

T = 1_800_000_000.0
ROOM = JID.parse("team@groups.hub.test")
OWNER = JID.parse("owner@hub.test/phone")
ALICE = JID.parse("alice@hub.test/a")
BOB = JID.parse("u1@tp.interop.hub.test/b")
CAROL = JID.parse("carol@hub.test/c")
C = StanzaErrorCondition


def join(nick: str) -> Presence:
    return Presence(ROOM.with_resource(nick), None, None, None, (Element(muc.JOIN),))


def leave(nick: str) -> Presence:
    return Presence(ROOM.with_resource(nick), None, None, None, (), PresenceType.UNAVAILABLE)


def codes(stanza: Stanza) -> set[int]:
    x = stanza.find(muc.USER_X)
    return set() if x is None else muc.statuses_of(x)


def item(stanza: Stanza) -> Element:
    x = stanza.find(muc.USER_X)
    assert x is not None
    found = x.find(muc.ITEM)
    assert found is not None
    return found


def open_room(*members: tuple[JID, Affiliation], config: RoomConfig | None = None) -> Room:
    """An unlocked room owned by OWNER (who has entered as 'owner'), with ``members``."""
    room = Room.create(ROOM, OWNER, config or RoomConfig(), RoomLimits(max_members=4), T)
    room.presence(OWNER, ROOM.with_resource("owner"), join("owner"), T)
    form = Element(muc.OWNER_QUERY)
    form.append(Element("{jabber:x:data}x", {"type": "submit"}))
    room.owner_set(OWNER, form, T)
    for jid, aff in members:
        room.state.members[jid.bare] = Member(aff)
    return room


def refused(condition: StanzaErrorCondition) -> pytest.RaisesExc[StanzaError]:
    return pytest.raises(StanzaError, match=f"^{condition}")


def test_creating_a_room_gives_201_and_locks_it_until_configured() -> None:
    room = Room.create(ROOM, OWNER, RoomConfig(), RoomLimits(), T)
    fx = room.presence(OWNER, ROOM.with_resource("owner"), join("owner"), T)
    self_presence, subject = fx.out
    assert codes(self_presence) == {110, 100, 201}
    assert item(self_presence).attrib == {
        "affiliation": "owner",
        "role": "moderator",
        "jid": str(OWNER),
    }
    assert isinstance(subject, Message)
    assert subject.type is MessageType.GROUPCHAT
    assert fx.created
    room.state.members[ALICE.bare] = Member(Affiliation.MEMBER)
    with refused(C.ITEM_NOT_FOUND):  # §10.1.1: locked to everyone but the owner
        room.presence(ALICE, ROOM.with_resource("alice"), join("alice"), T)
    query = Element(muc.OWNER_QUERY)
    query.append(Element("{jabber:x:data}x", {"type": "submit"}))  # the instant room
    assert room.owner_set(OWNER, query, T).saved
    assert not room.locked
    room.presence(ALICE, ROOM.with_resource("alice"), join("alice"), T)


def test_cancelling_the_first_configuration_destroys_the_room() -> None:
    room = Room.create(ROOM, OWNER, RoomConfig(), RoomLimits(), T)
    room.presence(OWNER, ROOM.with_resource("owner"), join("owner"), T)
    query = Element(muc.OWNER_QUERY)
    query.append(Element("{jabber:x:data}x", {"type": "cancel"}))
    assert room.owner_set(OWNER, query, T).destroyed


def test_entering_sends_occupants_then_self_then_subject() -> None:
    room = open_room((ALICE, Affiliation.MEMBER))
    fx = room.presence(ALICE, ROOM.with_resource("alice"), join("alice"), T)
    assert [(s.to, s.from_) for s in fx.out] == [
        (ALICE, ROOM.with_resource("owner")),  # the owner, to alice
        (OWNER, ROOM.with_resource("alice")),  # alice, to the owner
        (ALICE, ROOM.with_resource("alice")),  # alice, to herself: 110 and 100
        (ALICE, ROOM),  # the (empty) subject
    ]
    assert codes(fx.out[1]) == set()
    assert codes(fx.out[2]) == {110, 100}
    assert item(fx.out[1]).get("jid") == str(ALICE)  # non-anonymous: everyone sees jids


@pytest.mark.parametrize(
    ("who", "affiliation", "nick", "condition"),
    [
        (ALICE, None, "alice", C.REGISTRATION_REQUIRED),  # §7.2.6: members-only
        (ALICE, Affiliation.OUTCAST, "alice", C.FORBIDDEN),  # §7.2.7: banned
        (ALICE, Affiliation.MEMBER, "owner", C.CONFLICT),  # §7.2.9: nick in use
        (ALICE, Affiliation.MEMBER, "x" * 65, C.NOT_ACCEPTABLE),  # nick past the limit
    ],
)
def test_entering_is_refused_with_the_errors_xep_0045_names(
    who: JID, affiliation: Affiliation | None, nick: str, condition: StanzaErrorCondition
) -> None:
    room = open_room()
    if affiliation is not None:
        room.state.members[who.bare] = Member(affiliation)
    with refused(condition):
        room.presence(who, ROOM.with_resource(nick), join(nick), T)
    assert len(room.occupants) == 1


def test_a_nickless_join_is_jid_malformed() -> None:
    with refused(C.JID_MALFORMED):
        nickless = Presence(ROOM, None, None, None, (Element(muc.JOIN),))
        open_room().presence(ALICE, ROOM, nickless, T)


def test_a_full_room_refuses_one_more_but_not_an_admin() -> None:
    room = open_room(
        (ALICE, Affiliation.MEMBER),
        (CAROL, Affiliation.ADMIN),
        config=RoomConfig(max_occupants=1),
    )
    with refused(C.SERVICE_UNAVAILABLE):  # §7.2.10
        room.presence(ALICE, ROOM.with_resource("alice"), join("alice"), T)
    room.presence(CAROL, ROOM.with_resource("carol"), join("carol"), T)
    assert len(room.occupants) == 2


def test_groupchat_reaches_every_occupant_and_non_occupants_are_refused() -> None:
    room = open_room((ALICE, Affiliation.MEMBER))
    room.presence(ALICE, ROOM.with_resource("alice"), join("alice"), T)
    body = Element(muc.BODY)
    body.text = "hi"
    msg = Message(ROOM, ALICE, "m1", None, (body,), MessageType.GROUPCHAT)
    fx = room.groupchat(ALICE, msg, T)
    assert sorted(str(s.to) for s in fx.out) == sorted([str(OWNER), str(ALICE)])
    assert all(s.from_ == ROOM.with_resource("alice") and s.id == "m1" for s in fx.out)
    with refused(C.NOT_ACCEPTABLE):  # §7.4
        room.groupchat(CAROL, msg, T)


def test_an_encrypted_only_room_refuses_plain_bodies() -> None:
    room = open_room(config=RoomConfig(encrypted_only=True))
    body = Element(muc.BODY)
    body.text = "plain"
    with refused(C.NOT_ACCEPTABLE):
        room.groupchat(OWNER, Message(ROOM, OWNER, "p", None, (body,), MessageType.GROUPCHAT), T)
    encrypted = Element("{urn:xmpp:omemo:2}encrypted")
    ok = room.groupchat(
        OWNER, Message(ROOM, OWNER, "e", None, (encrypted, body), MessageType.GROUPCHAT), T
    )
    assert len(ok.out) == 1


def test_subject_changes_need_a_moderator_unless_configured() -> None:
    room = open_room((ALICE, Affiliation.MEMBER))
    room.presence(ALICE, ROOM.with_resource("alice"), join("alice"), T)
    subject = Element(muc.SUBJECT)
    subject.text = "plans"
    msg = Message(ROOM, None, None, None, (subject,), MessageType.GROUPCHAT)
    with refused(C.FORBIDDEN):  # §8.1
        room.groupchat(ALICE, msg, T)
    assert room.groupchat(OWNER, msg, T).saved
    assert room.state.subject == "plans"


def test_leaving_tells_everyone_with_110_to_self() -> None:
    room = open_room((ALICE, Affiliation.MEMBER))
    room.presence(ALICE, ROOM.with_resource("alice"), join("alice"), T)
    fx = room.presence(ALICE, ROOM.with_resource("alice"), leave("alice"), T)
    assert {(str(s.to), frozenset(codes(s))) for s in fx.out} == {
        (str(OWNER), frozenset()),
        (str(ALICE), frozenset({110})),
    }
    assert all(isinstance(s, Presence) and s.type is PresenceType.UNAVAILABLE for s in fx.out)
    assert "alice" not in room.occupants


def test_a_temporary_room_ends_with_its_last_occupant() -> None:
    room = open_room(config=RoomConfig(persistent=False))
    assert room.presence(OWNER, ROOM.with_resource("owner"), leave("owner"), T).destroyed


def test_nick_change_sends_303_then_the_new_presence() -> None:
    room = open_room()
    fx = room.presence(OWNER, ROOM.with_resource("boss"), join("boss"), T)
    gone, back = fx.out
    assert codes(gone) == {303, 110}
    assert item(gone).get("nick") == "boss"
    assert back.from_ == ROOM.with_resource("boss")
    assert codes(back) == {110}


def admin(*items: str) -> list[muc.AdminItem]:
    query = Element(muc.ADMIN_QUERY)
    for attrs in items:
        el = Element(muc.ADMIN_ITEM)
        for pair in attrs.split():
            k, v = pair.split("=")
            el.set(k, v)
        query.append(el)
    return muc.read_admin_items(query)


def test_revoking_membership_removes_the_occupant_with_321() -> None:
    room = open_room((ALICE, Affiliation.MEMBER))
    room.presence(ALICE, ROOM.with_resource("alice"), join("alice"), T)
    fx = room.admin_set(OWNER, admin(f"affiliation=none jid={ALICE.bare}"))
    assert fx.members == {ALICE.bare: None}
    assert fx.removed == {ALICE.bare}
    to_alice = [s for s in fx.out if s.to == ALICE]
    assert codes(to_alice[0]) == {321, 110}
    assert "alice" not in room.occupants


def test_ban_is_301_and_kick_is_307_with_actor_and_reason() -> None:
    room = open_room((ALICE, Affiliation.MEMBER), (CAROL, Affiliation.MEMBER))
    room.presence(ALICE, ROOM.with_resource("alice"), join("alice"), T)
    room.presence(CAROL, ROOM.with_resource("carol"), join("carol"), T)
    fx = room.admin_set(OWNER, admin(f"affiliation=outcast jid={ALICE.bare}"))
    assert {frozenset(codes(s)) for s in fx.out} == {frozenset({301}), frozenset({301, 110})}
    with refused(C.FORBIDDEN):  # the banned may not come back
        room.presence(ALICE, ROOM.with_resource("alice"), join("alice"), T)
    fx = room.admin_set(OWNER, admin("role=none nick=carol"))
    assert {frozenset(codes(s)) for s in fx.out} == {frozenset({307}), frozenset({307, 110})}
    actor = item(fx.out[0]).find(f"{{{muc.NS_USER}}}actor")
    assert actor is not None
    assert actor.get("nick") == "owner"


@pytest.mark.parametrize(
    ("actor", "actor_aff", "change", "condition"),
    [
        (ALICE, Affiliation.MEMBER, f"affiliation=member jid={CAROL.bare}", C.FORBIDDEN),
        (ALICE, Affiliation.ADMIN, f"affiliation=none jid={OWNER.bare}", C.NOT_ALLOWED),
        (ALICE, Affiliation.ADMIN, f"affiliation=admin jid={CAROL.bare}", C.NOT_ALLOWED),
        (OWNER, Affiliation.OWNER, f"affiliation=member jid={OWNER.bare}", C.CONFLICT),
        (ALICE, Affiliation.ADMIN, "role=none nick=owner", C.NOT_ALLOWED),
        (ALICE, Affiliation.MEMBER, "role=none nick=owner", C.FORBIDDEN),
        (OWNER, Affiliation.OWNER, "role=none nick=nobody", C.ITEM_NOT_FOUND),
        (OWNER, Affiliation.OWNER, "role=participant nick=owner", C.FEATURE_NOT_IMPLEMENTED),
    ],
)
def test_admin_changes_are_refused_as_xep_0045_says(
    actor: JID, actor_aff: Affiliation, change: str, condition: StanzaErrorCondition
) -> None:
    room = open_room((actor, actor_aff))
    before = dict(room.state.members)
    with refused(condition):
        room.admin_set(actor, admin(change))
    assert room.state.members == before  # all or nothing


def test_members_limit_at_its_boundary() -> None:
    room = open_room()  # max_members=4, the owner is one
    fx = room.admin_set(
        OWNER,
        admin(*(f"affiliation=member jid=m{i}@hub.test" for i in range(3))),
    )
    assert len(fx.members) == 3
    with refused(C.RESOURCE_CONSTRAINT):
        room.admin_set(OWNER, admin("affiliation=member jid=m9@hub.test"))
    room.admin_set(OWNER, admin("affiliation=outcast jid=m9@hub.test"))  # outcasts are free


def test_a_member_leaves_the_member_list_themselves() -> None:
    room = open_room((ALICE, Affiliation.MEMBER))
    fx = room.admin_set(ALICE, admin(f"affiliation=none jid={ALICE.bare}"))
    assert fx.members == {ALICE.bare: None}


def test_member_lists_for_members_outcasts_for_admins() -> None:
    room = open_room((ALICE, Affiliation.MEMBER), (BOB, Affiliation.OUTCAST))
    q = Element(muc.ADMIN_QUERY)
    q.append(Element(muc.ADMIN_ITEM, {"affiliation": "member"}))
    listed = room.admin_get(ALICE, q)
    assert [i.get("jid") for i in listed] == [str(ALICE.bare)]
    q2 = Element(muc.ADMIN_QUERY)
    q2.append(Element(muc.ADMIN_ITEM, {"affiliation": "outcast"}))
    with refused(C.FORBIDDEN):
        room.admin_get(ALICE, q2)
    assert [i.get("jid") for i in room.admin_get(OWNER, q2)] == [str(BOB.bare)]
    with refused(C.FORBIDDEN):
        room.admin_get(CAROL, q)  # no affiliation: no list


def test_mediated_invitation_makes_a_pending_member_until_entering() -> None:
    room = open_room((ALICE, Affiliation.ADMIN))
    room.presence(ALICE, ROOM.with_resource("alice"), join("alice"), T)
    fx = room.invite(ALICE, muc.Invitation(CAROL.bare, "join us"), T)
    assert fx.members == {CAROL.bare: Member(Affiliation.MEMBER, ALICE.bare)}
    invitation = [s for s in fx.out if s.to == CAROL.bare]
    assert len(invitation) == 1
    x = invitation[0].find(muc.USER_X)
    assert x is not None
    invite = x.find(muc.INVITE)
    assert invite is not None
    assert invite.get("from") == str(ALICE.bare)
    announced = [s for s in fx.out if s.to != CAROL.bare]  # §9.3 to the occupants
    assert {str(s.to) for s in announced} == {str(OWNER), str(ALICE)}
    entered = room.presence(CAROL, ROOM.with_resource("carol"), join("carol"), T)
    assert entered.members == {CAROL.bare: Member(Affiliation.MEMBER)}


def test_a_decline_withdraws_the_pending_membership_and_tells_the_inviter() -> None:
    room = open_room((ALICE, Affiliation.ADMIN))
    room.presence(ALICE, ROOM.with_resource("alice"), join("alice"), T)
    room.invite(ALICE, muc.Invitation(CAROL.bare, ""), T)
    fx = room.decline(CAROL, muc.Invitation(ALICE.bare, "no thanks", decline=True))
    assert fx.members == {CAROL.bare: None}
    told = [s for s in fx.out if s.to == ALICE.bare]
    assert len(told) == 1
    with refused(C.REGISTRATION_REQUIRED):
        room.presence(CAROL, ROOM.with_resource("carol"), join("carol"), T)


def test_members_invite_only_where_configured() -> None:
    room = open_room((ALICE, Affiliation.MEMBER))
    room.presence(ALICE, ROOM.with_resource("alice"), join("alice"), T)
    with refused(C.FORBIDDEN):
        room.invite(ALICE, muc.Invitation(CAROL.bare, ""), T)
    with refused(C.NOT_ACCEPTABLE):
        room.invite(CAROL, muc.Invitation(ALICE.bare, ""), T)  # not an occupant
    room.state.config = RoomConfig(allow_invites=True)
    assert room.invite(ALICE, muc.Invitation(CAROL.bare, ""), T).members


def test_config_change_announces_104_and_172() -> None:
    room = open_room(config=RoomConfig(non_anonymous=False))
    form = room.owner_get(OWNER)
    x = form.find("{jabber:x:data}x")
    assert x is not None
    assert x.get("type") == "form"
    submitted = Element(muc.OWNER_QUERY)
    sub = Element("{jabber:x:data}x", {"type": "submit"})
    for var, value in (("muc#roomconfig_whois", "anyone"), ("muc#roomconfig_roomname", "T")):
        f = Element("{jabber:x:data}field", {"var": var})
        v = Element("{jabber:x:data}value")
        v.text = value
        f.append(v)
        sub.append(f)
    submitted.append(sub)
    fx = room.owner_set(OWNER, submitted, T)
    assert [codes(s) for s in fx.out] == [{172}]
    assert room.config.non_anonymous
    assert room.config.name == "T"
    with refused(C.FORBIDDEN):
        room.owner_get(ALICE)


def test_destruction_sends_destroy_to_every_occupant() -> None:
    room = open_room((ALICE, Affiliation.MEMBER))
    room.presence(ALICE, ROOM.with_resource("alice"), join("alice"), T)
    query = Element(muc.OWNER_QUERY)
    query.append(muc.destroy_element(muc.OWNER_DESTROY, "done"))
    fx = room.owner_set(OWNER, query, T)
    assert fx.destroyed
    assert fx.removed == {OWNER.bare, ALICE.bare}
    assert len(fx.out) == 2
    for s in fx.out:
        x = s.find(muc.USER_X)
        assert x is not None
        assert x.find(muc.DESTROY_USER) is not None


def test_self_ping_answers_only_the_joined_session() -> None:
    room = open_room()
    ping = Iq(ROOM.with_resource("owner"), OWNER, "p", None, (Element("{urn:xmpp:ping}ping"),))
    assert room.self_ping(OWNER, "owner", ping).type is IqType.RESULT
    with refused(C.NOT_ACCEPTABLE):
        room.self_ping(ALICE, "owner", ping)


def test_two_sessions_share_one_occupant() -> None:
    room = open_room()
    other = OWNER.bare.with_resource("laptop")
    room.presence(other, ROOM.with_resource("owner"), join("owner"), T)
    assert set(room.occupants["owner"].sessions) == {OWNER, other}
    fx = room.presence(other, ROOM.with_resource("owner"), leave("owner"), T)
    assert [s.to for s in fx.out] == [other]  # the other session stays
    assert room.occupants["owner"].role is Role.MODERATOR


def test_labels_mark_third_party_members() -> None:
    marker = Element("{urn:interlink:interop:0}interop", {"provider": "tp"})
    room = Room.create(
        ROOM,
        OWNER,
        RoomConfig(),
        RoomLimits(),
        T,
        labels=lambda real: (marker,) if real == BOB.bare else (),
    )
    room.locked = False
    room.state.members[BOB.bare] = Member(Affiliation.MEMBER)
    room.presence(OWNER, ROOM.with_resource("owner"), join("owner"), T)
    fx = room.presence(BOB, ROOM.with_resource("bob"), join("bob"), T)
    to_owner = next(s for s in fx.out if s.to == OWNER)
    assert item(to_owner).find("{urn:interlink:interop:0}interop") is not None
    body = Element(muc.BODY)
    out = room.groupchat(BOB, Message(ROOM, BOB, None, None, (body,), MessageType.GROUPCHAT), T)
    assert all(s.find("{urn:interlink:interop:0}interop") is not None for s in out.out)
