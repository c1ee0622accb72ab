"""Sans-I/O XMPP: XML stream parsing, JIDs, typed stanzas, SASL and stream negotiation.

Nothing here does I/O, reads a clock or imports asyncio; it imports nothing of Interlink's but
:mod:`interlink.errors`.
"""
