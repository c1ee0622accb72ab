"""How the chat client looks: its stylesheet and the chat view's text."""

from __future__ import annotations

import time

from rich.text import Text

from interlink.chat import model as m

CSS = """
#login { width: 72; height: auto; margin: 1 2; }
#conversations { width: 34; border-right: solid $primary; }
#conversations .section { color: $accent; text-style: bold; }
#chat { width: 1fr; }
#chat-header { height: auto; background: $boost; padding: 0 1; }
#messages { height: 1fr; padding: 0 1; }
#typing { height: 1; color: $text-muted; padding: 0 1; }
#request-actions { height: auto; display: none; }
#request-actions.shown { display: block; }
#transfer-row { height: 1; display: none; }
#transfer-row.shown { display: block; }
.dialog { width: 86; height: auto; max-height: 90%; border: thick $primary; background: $surface;
          padding: 1 2; }
.buttons, .row { height: auto; }
.device { height: auto; margin: 1 0 0 0; }
#status { height: 1; padding: 0 1; background: $boost; }
#status.offline { background: $warning 40%; }
#status.ended { background: $error 40%; }
HelpScreen { align: center middle; }
#help-text { height: auto; }
NewChatDialog, SafetyDialog, SettingsDialog, ReportDialog, HelpScreen { align: center middle; }
#safety-number { text-style: bold; margin: 1 0; }
.fingerprint { width: 1fr; }
"""


def stamp_of(at: float, now: float) -> str:
    """A line's time: the hour, with the date when it is not today's (a message that waited)."""
    when, today = time.localtime(at), time.localtime(now)
    if (when.tm_year, when.tm_yday) == (today.tm_year, today.tm_yday):
        return time.strftime("%H:%M", when)
    return time.strftime("%Y-%m-%d %H:%M", when)


def render_lines(c: m.Conversation, now: float | None = None) -> Text:
    """The conversation as the chat view shows it (``now``: for the dates of older lines)."""
    out = Text()
    number = 0
    today = time.time() if now is None else now
    for line in c.lines:
        stamp = stamp_of(line.at, today)
        if line.note:
            out.append(f"{stamp}  {line.text}\n", style="italic yellow")
            continue
        who = "you" if line.outgoing else (c.marker.user if c.marker and c.marker.user else "them")
        out.append(f"{stamp} {who}: ", style="bold cyan" if line.outgoing else "bold green")
        if line.file is not None and not line.outgoing:
            number += 1
            out.append(f"#{number} ")
        out.append(line.text)
        if line.flagged:
            out.append("  ⚠ unverified key", style="bold red")
        if line.delivery is not None:
            out.append(f"  {line.delivery.tick}", style="red" if line.error else "dim")
        if line.error:
            out.append(f"  ({line.error})", style="red")
        if line.transfer is not None:
            t = line.transfer
            if t.path:
                out.append(f"  saved: {t.path}", style="dim")
            elif t.error:
                out.append(f"  {t.error}", style="red")
            elif t.total:
                out.append(f"  {t.fraction:.0%}", style="dim")
        elif line.file is not None and line.file_event is not None:
            out.append(f"  (/download {number})", style="dim")
        out.append("\n")
    return out
