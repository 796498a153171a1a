"""The two things the pool reads from asyncmy beyond its public API, in one place.

asyncmy is capped below its next minor version in pyproject.toml, and
tests/test_asyncmy_internals.py fails if either read changes meaning; both read
the attribute directly, so a renamed one fails loudly instead of reading as
"nothing open" or "healthy".
"""

from __future__ import annotations

from typing import Any


def last_server_status(conn: Any) -> int:
    """The status flags the server sent with the last statement's result.

    asyncmy's public `server_status` keeps the last *non-zero* status, so a
    final OK of 0 ("nothing open", as after a procedure that commits) would be
    missed; the last result (`_result`) has the raw value.
    """
    last = conn._result
    return last.server_status if last is not None else conn.server_status


def stream_broken(conn: Any) -> bool:
    """Whether the connection's socket can no longer be used (closed, end of
    stream or an error), which `connected` alone does not tell."""
    return bool(conn._stream_broken)
