"""Interlink: an open implementation of messaging interoperability (EU DMA Art. 7)."""

from __future__ import annotations

__version__ = "0.1.0"
