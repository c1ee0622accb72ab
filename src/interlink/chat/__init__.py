"""``interlink chat``: a terminal client on the SDK (Textual).

- :mod:`interlink.chat.model`: conversations, inboxes, requests, ticks and typing as plain state,
  fed with SDK events and the time; no I/O, no Textual.
- :mod:`interlink.chat.session`: logging in (a gatekeeper account, or a provider kit's user with
  enlistment on first run) and finding people by phone number.
- :mod:`interlink.chat.app` and :mod:`interlink.chat.dialogs`: the Textual screens, a thin shell
  over the two; :mod:`interlink.chat.look`: the stylesheet and the chat view's text.
"""
