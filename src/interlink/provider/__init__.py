"""The reference provider kit: what a third-party messaging provider runs beside its own servers
to take part in interop — its users, a JWT issuer with a published JWK set, the introspection
endpoint and a push receiver (``interlink provider serve``)."""
