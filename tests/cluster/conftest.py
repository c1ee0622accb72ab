"""The cluster test kit's fixture (:mod:`tests.cluster.kit`)."""

from __future__ import annotations

from tests.cluster.kit import nodes

__all__ = ["nodes"]
