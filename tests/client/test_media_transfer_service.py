"""The SDK's ``MediaTransfer`` over fakes of its ports (the stream, the encrypted send path, the
uploader): nothing is sent when the upload fails, no sealed copy is left behind, a third
party's file needs the media proxy, and nothing moves before ``connect()``."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from xml.etree.ElementTree import Element

import pytest
import slixmpp

from interlink.client.errors import ClientError, NotConnected
from interlink.client.events import FileMessage
from interlink.client.media import FileInfo, MediaError
from interlink.client.media_transfer import MediaTransfer, Slot
from interlink.xmpp.ext.interop import InteropMarker

ME = slixmpp.JID("me@hub.test/phone")


class RefusingUploader:
    def __init__(self) -> None:
        self.asked: list[tuple[str, int]] = []

    async def slot(self, name: str, size: int, content_type: str) -> Slot:
        self.asked.append((name, size))
        raise MediaError("the hub refused: file too large")


class Setup:
    def __init__(self, tmp_path: Path, *, connected: bool = True, http_url: str | None = None):
        self.connected = connected
        self.sent: list[tuple[str, list[Element], str | None]] = []
        self.uploader = RefusingUploader()
        self.work_dir = tmp_path / "media-tmp"
        self.media = MediaTransfer(
            own=ME,
            timeout=2.0,
            stream=self._stream,
            send=self._send,
            uploader=self.uploader,
            work_dir=self.work_dir,
            ca_file=None,
            http_url=http_url,
        )

    def _stream(self) -> slixmpp.ClientXMPP:
        if not self.connected:
            raise NotConnected
        return slixmpp.ClientXMPP(str(ME), "pw")  # never connected: nothing may go out

    async def _send(
        self, to: str, content: list[Element], *, legacy_text: str | None, store: bool
    ) -> str:
        self.sent.append((to, content, legacy_text))
        return "id"


def file_from(sender: str) -> FileMessage:
    info = FileInfo("file", "a.txt", "text/plain", 3, "https://media.test/a", b"k" * 32, b"i" * 12,
                    b"s" * 32, b"c" * 32)  # fmt: skip
    return FileMessage(sender, info, "m1", 7)


async def test_a_refused_upload_sends_nothing_and_leaves_no_sealed_copy(tmp_path: Path) -> None:
    s = Setup(tmp_path)
    path = tmp_path / "notes.txt"
    path.write_text("hello")
    with pytest.raises(MediaError, match="too large"):
        await s.media.send_file("bob@hub.test", path)
    assert [name for name, _ in s.uploader.asked] == ["notes.txt"]
    assert s.sent == []
    assert list(s.work_dir.iterdir()) == []


async def test_a_third_party_s_file_needs_the_media_proxy(tmp_path: Path) -> None:
    s = Setup(tmp_path)
    with pytest.raises(ClientError, match="http_url"):
        await s.media.download(file_from("x@chatapp.interop.hub.test"), tmp_path / "in")
    assert not (tmp_path / "in").exists()


async def test_a_federated_sender_s_file_needs_the_media_proxy_too(tmp_path: Path) -> None:
    """A federated user's address is on its own server's domain: the hub's interop marker names
    the provider, and the file goes through the hub's media proxy like a plug-and-play one's
    (a direct fetch would give the provider's media host this user's IP address)."""
    s = Setup(tmp_path)
    federated = replace(
        file_from("alice@chat.example"),
        interop=InteropMarker("chatprov", "Chat", None, "separate"),
    )
    with pytest.raises(ClientError, match="http_url"):
        await s.media.download(federated, tmp_path / "in")
    assert not (tmp_path / "in").exists()


async def test_before_connect_nothing_moves(tmp_path: Path) -> None:
    s = Setup(tmp_path, connected=False)
    path = tmp_path / "notes.txt"
    path.write_text("hello")
    with pytest.raises(NotConnected):
        await s.media.send_file("bob@hub.test", path)
    with pytest.raises(NotConnected):
        await s.media.download(file_from("bob@hub.test"), tmp_path / "in")
    assert s.uploader.asked == []
    assert s.sent == []
