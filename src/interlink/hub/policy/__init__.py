"""Consent and abuse rules on the routing path (DESIGN Flows 6-7): the rules as one pure
decision (``decision``) and the shell that applies it (``engine``), interop settings, message
requests, blocking, reports and rate limits."""
