"""The group service: XEP-0045 rooms on groups.<service> (docs/protocol.md, groups)."""
