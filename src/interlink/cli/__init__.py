"""The ``interlink`` command."""
