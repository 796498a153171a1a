"""The audit log: written in the change's own transaction, never rewritten,
read back newest first with filters and keyset pages."""

from __future__ import annotations

from datetime import timedelta

import pytest
from asyncmy.errors import OperationalError

from quality import audit
from quality.audit import Actor, Filters, entries
from quality.clock import utc_now
from quality.db import Database

ADA = Actor(1, "ada", "10.0.0.7")


async def test_a_row_commits_or_rolls_back_with_its_change(db: Database) -> None:
    async with db.transaction() as cur:
        await audit.record(cur, ADA, "defect.update", "101", {"name": "Scratch"}, {"name": "Nick"})
    with pytest.raises(RuntimeError):
        async with db.transaction() as cur:
            await audit.record(cur, ADA, "defect.update", "102", None, {"name": "Gone"})
            raise RuntimeError("the change failed after its audit row")
    async with db.transaction() as cur:
        (entry,) = await entries(cur, Filters(), None, 10)
    assert (entry.actor, entry.address, entry.action, entry.target) == (
        "ada", "10.0.0.7", "defect.update", "101")
    assert [(c.field, c.before, c.after) for c in entry.changes] == [("name", "Scratch", "Nick")]


@pytest.mark.parametrize("statement", ["UPDATE audit_log SET actor = 'mallory'", "DELETE FROM audit_log"])
async def test_the_database_refuses_to_rewrite_the_log(db: Database, statement: str) -> None:
    async with db.transaction() as cur:
        await audit.record(cur, ADA, "user.create", "sam", None, {"role": "operator"})
    with pytest.raises(OperationalError, match="the audit log is read-only"):
        async with db.transaction() as cur:
            await cur.execute(statement)
    async with db.transaction() as cur:
        await cur.execute("SELECT actor FROM audit_log")
        assert await cur.fetchall() == [("ada",)]


async def test_filters_and_keyset_pages(db: Database) -> None:
    bob = Actor(2, "bob", "10.0.0.8")
    async with db.transaction() as cur:
        for n in range(7):
            await audit.record(cur, ADA if n % 2 else bob, "user.update" if n < 5 else "role.rename",
                               f"t{n}", None, {"n": n})
        await cur.execute("INSERT INTO audit_log (at, actor, action, target) VALUES (%s, 'old', 'x_y', 'z')",
                          (utc_now() - timedelta(days=30),))

    async def targets(filters: Filters, before: int | None = None, limit: int = 10) -> list[str]:
        async with db.transaction() as cur:
            return [entry.target for entry in await entries(cur, filters, before, limit)]

    assert await targets(Filters(actor="ada")) == ["t5", "t3", "t1"]
    assert await targets(Filters(action="role")) == ["t6", "t5"]
    assert await targets(Filters(action="x%")) == []  # a LIKE wildcard is a plain character
    assert await targets(Filters(since=utc_now() - timedelta(days=1))) == [f"t{n}" for n in range(6, -1, -1)]
    assert await targets(Filters(until=utc_now() - timedelta(days=1))) == ["z"]
    async with db.transaction() as cur:
        first = await entries(cur, Filters(), None, 3)
        second = await entries(cur, Filters(), first[-1].id, 3)
    # Newest first by id (the back-dated row was written last).
    assert [e.target for e in first + second] == ["z", "t6", "t5", "t4", "t3", "t2"]
