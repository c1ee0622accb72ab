"""Consent and abuse rules on the routing path (DESIGN Flows 6-7): interop settings, message
requests, blocking, reports and rate limits."""
