"""Which OMEMO version a peer's clients read, from what they advertise (XEP-0115 caps /
XEP-0030 disco#info).

A client that reads an OMEMO version asks for its device-list notifications: it advertises
``<devices node>+notify`` (XEP-0163 §4). Some clients publish their device in both device lists
but read legacy OMEMO only (poezio-omemo 0.9); python-omemo would encrypt to such a device with
OMEMO 2, the first version in the SDK's order, and the message would be unreadable. So when a
client of the peer that the SDK can see advertises legacy OMEMO and not OMEMO 2, text for that
peer is encrypted legacy-first: devices in the legacy list get legacy OMEMO, devices only in
the OMEMO 2 list still get OMEMO 2. With nothing advertised (no presence shared, no disco
answer) the order stays OMEMO 2 first.

What a client advertises is not always what it reads: poezio-omemo 0.9.1 (on slixmpp-omemo 2.2)
advertises ``urn:xmpp:omemo:2:devices+notify`` and publishes its device in both lists, yet
decrypts legacy OMEMO only. A peer whose last message to us was legacy OMEMO is therefore
answered legacy-first too: its client has just shown that it speaks legacy OMEMO.
"""

from __future__ import annotations

from collections.abc import Iterable

from interlink.client.omemo_session import DEVICES_NODE, LEGACY, OMEMO2

NOTIFY = {namespace: f"{node}+notify" for namespace, node in DEVICES_NODE.items()}


def reads_legacy_only(features: Iterable[str]) -> bool:
    """Whether one client's advertised features say it reads legacy OMEMO and not OMEMO 2."""
    advertised = set(features)
    return NOTIFY[LEGACY] in advertised and NOTIFY[OMEMO2] not in advertised


def text_order(
    clients: Iterable[Iterable[str]], enabled: list[str], *, wrote_legacy: bool = False
) -> list[str]:
    """The namespace order for encrypting text to a peer whose visible clients advertise
    ``clients`` (one feature set each), among the ``enabled`` namespaces; ``wrote_legacy``:
    the peer's last message to us was legacy OMEMO."""
    if LEGACY in enabled and (wrote_legacy or any(reads_legacy_only(f) for f in clients)):
        return [LEGACY, *(n for n in enabled if n != LEGACY)]
    return list(enabled)


def needs_twin(devices: Iterable[tuple[frozenset[str], str | None]], order: list[str]) -> bool:
    """Whether text encrypted in ``order`` must also go as a legacy *twin*: a second stanza
    with the same id carrying legacy OMEMO only. ``devices``: each of the peer's devices as
    (the namespaces it is active in, the version it last wrote to us in, or None).

    A device in both lists that has not written to us in OMEMO 2 may read legacy only
    (poezio-omemo 0.9.1), and such a client cannot be sent both versions in one stanza:
    slixmpp-omemo 2.2 decrypts the OMEMO 2 ``<encrypted>`` whenever one is present (and cannot
    open its SCE envelope). So the OMEMO 2 stanza goes to the devices that read it and the twin
    to the rest, until every such device has written in OMEMO 2 (it reads it) — once one wrote
    legacy only, the order is legacy-first and no twin is needed."""
    if len(order) < 2 or order[0] != OMEMO2 or LEGACY not in order:
        return False
    return any(
        OMEMO2 in active and LEGACY in active and wrote != OMEMO2 for active, wrote in devices
    )
