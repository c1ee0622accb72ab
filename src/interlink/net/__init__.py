"""Thin asyncio shells around the sans-I/O cores: c2s over TCP (STARTTLS and direct TLS), XMPP over
WebSocket on the HTTP port, and the HTTP app itself."""
