"""A collaborator built after the objects that need it, given to them at their construction.

Some cycles are real: the s2s transport routes through the hub, and the hub sends through the
transport; operator state closes the transport's links, and the transport asks operator state.
The composition root then creates a :class:`Later` first, passes it to the constructors, and
fulfils it once when the collaborator exists. Nothing is reassigned after assembly, and a second
fulfilment is a wiring mistake, refused.
"""

from __future__ import annotations

from typing import Generic, TypeVar

T = TypeVar("T")


class Later(Generic[T]):
    """A reference to a ``T``, empty until :meth:`fulfil` (once)."""

    __slots__ = ("_it", "_what")

    def __init__(self, what: str) -> None:
        self._what = what
        self._it: T | None = None

    def fulfil(self, it: T) -> None:
        """Raises: RuntimeError (already fulfilled: two of them is a wiring mistake)."""
        if self._it is not None:
            raise RuntimeError(f"{self._what} is already fulfilled")
        self._it = it

    @property
    def it(self) -> T | None:
        """The collaborator, or ``None`` before :meth:`fulfil`."""
        return self._it
