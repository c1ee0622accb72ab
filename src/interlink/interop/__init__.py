"""The interop control plane: third-party providers, enlistment, tokens, push (DESIGN Flows 1–4)."""
