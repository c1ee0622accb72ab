"""The hub's domain logic: sessions, routing, roster and presence, offline delivery, disco.

Nothing here knows sockets: a connection is a :class:`~interlink.hub.session.SessionPort`.
"""
