"""Accounts: creation with checked names and passwords, password changes that end
sessions, and the `admin` account every install has."""

from __future__ import annotations

import asyncio
import json

import asyncmy
import pytest

from quality.accounts import (
    ADMIN_PERMISSIONS,
    AccountError,
    create_user,
    ensure_admin,
    set_password,
    update_user,
)
from quality.audit import SYSTEM
from quality.clock import utc_now
from quality.db import Database
from quality.passwords import verify_password
from quality.settings import DatabaseURL


async def stored_hash(db: Database, username: str) -> str:
    async with db.transaction() as cur:
        await cur.execute("SELECT password_hash FROM users WHERE username = %s", (username,))
        (password_hash,) = await cur.fetchone() or ("",)
    return password_hash


async def test_a_user_is_created_with_a_normalised_name_and_a_hashed_password(db: Database) -> None:
    user_id = await create_user(db, "  Ana.Pop ", "correct-horse-42", "operator", "Ana Pop")
    assert user_id > 0
    async with db.transaction() as cur:
        await cur.execute(
            "SELECT u.id, u.full_name, r.name FROM users u JOIN roles r ON r.id = u.role_id"
            " WHERE u.username = 'ana.pop'")
        assert await cur.fetchone() == (user_id, "Ana Pop", "operator")
    password_hash = await stored_hash(db, "ana.pop")
    assert "correct-horse-42" not in password_hash
    assert verify_password("correct-horse-42", password_hash)


@pytest.mark.parametrize(("username", "password", "role", "message"), [
    ("a", "correct-horse-42", "operator", "The user name must be 2-64 characters"),
    ("has space", "correct-horse-42", "operator", "The user name must be 2-64 characters"),
    ("bob", "short", "operator", "Password must be at least 8 characters."),
    ("bob", "x" * 1025, "operator", "Password must be at most 1024 characters."),
    ("bob", "correct-horse-42", "overlord", "No role named 'overlord'."),
])
async def test_bad_names_passwords_and_roles_are_refused(
    db: Database, username: str, password: str, role: str, message: str
) -> None:
    with pytest.raises(AccountError, match=message):
        await create_user(db, username, password, role)
    assert await stored_hash(db, username.strip().lower()) == ""


async def test_a_taken_user_name_is_refused(db: Database) -> None:
    await create_user(db, "bob", "correct-horse-42", "operator")
    with pytest.raises(AccountError, match="User 'bob' already exists"):
        await create_user(db, "BOB", "another-pass-99", "admin")


async def test_a_new_password_ends_the_users_sessions(db: Database) -> None:
    user_id = await create_user(db, "cara", "correct-horse-42", "operator")
    now = utc_now()
    async with db.transaction() as cur:
        await cur.execute(
            "INSERT INTO sessions (id, user_id, created_at, expires_at, address, user_agent)"
            " VALUES (%s, %s, %s, %s, '127.0.0.1', 'test')",
            (b"s" * 32, user_id, now, now.replace(year=now.year + 1)))
    await set_password(db, "cara", "brand-new-pass-7")
    assert verify_password("brand-new-pass-7", await stored_hash(db, "cara"))
    async with db.transaction() as cur:
        await cur.execute("SELECT COUNT(*) FROM sessions WHERE user_id = %s", (user_id,))
        assert await cur.fetchone() == (0,)
    with pytest.raises(AccountError, match="No user named 'nobody'"):
        await set_password(db, "nobody", "brand-new-pass-7")


async def test_admin_is_created_once_with_a_generated_password_shown_once(db: Database) -> None:
    generated = await ensure_admin(db, None)
    assert generated and len(generated) >= 12
    assert verify_password(generated, await stored_hash(db, "admin"))
    assert await ensure_admin(db, None) is None
    assert await ensure_admin(db, "another-pass-99") is None
    assert verify_password(generated, await stored_hash(db, "admin"))




async def test_a_name_taken_between_the_check_and_the_insert_reads_as_already_exists(
    db: Database,
) -> None:
    # Two processes starting at once both ensure `admin`: each checks the name,
    # then inserts. Here another transaction inserts the name and commits only
    # once our insert waits on it, so our check passed and our insert collides.
    async with db.transaction() as other:
        await other.execute(
            "INSERT INTO users (username, password_hash, role_id)"
            " SELECT 'twin', 'x', id FROM roles WHERE name = 'operator'")
        creating = asyncio.ensure_future(create_user(db, "twin", "correct-horse-42", "operator"))
        async with asyncio.timeout(30):  # a liveness bound
            while not await insert_waits_on_a_lock(db):
                assert not creating.done(), creating.exception()
                await asyncio.sleep(0.02)
    with pytest.raises(AccountError, match="already exists"):
        await creating


async def insert_waits_on_a_lock(db: Database) -> bool:
    """Whether create_user's INSERT is running (it can only be waiting for the lock)."""
    async with db.transaction() as cur:
        await cur.execute(
            "SELECT COUNT(*) FROM information_schema.processlist"
            " WHERE info LIKE 'INSERT INTO users (username, full_name%%'")
        (waits,) = await cur.fetchone() or (0,)
    return waits > 0


async def test_an_admin_save_that_loses_a_deadlock_runs_again_and_lands_once(
        db: Database, db_url: DatabaseURL) -> None:
    # A second connection takes the account's row, then the admin lock the save
    # holds while it waits for that row: a real deadlock, and the save (it has
    # written nothing, the other has) is the one InnoDB rolls back with 1213.
    await create_user(db, "boss", "correct-horse-42", "admin")
    user_id = await create_user(db, "dana", "correct-horse-42", "operator", "Dana")
    other = await asyncmy.connect(**db_url.connect_kwargs(), autocommit=False)
    try:
        async with other.cursor() as cur:
            await cur.execute("UPDATE users SET full_name = 'Dana (held)' WHERE id = %s", (user_id,))
            await cur.execute("CREATE TEMPORARY TABLE weight (n INT) ENGINE=InnoDB")
            await cur.execute("INSERT INTO weight SELECT seq FROM seq_1_to_2000")
            saving = asyncio.create_task(update_user(db, user_id, actor=SYSTEM, full_name="Dana Pop"))
            await asyncio.sleep(0.5)  # the save has the admin lock and waits for the row
            assert not saving.done()
            await cur.execute("SELECT name FROM permissions WHERE name IN (%s, %s) FOR UPDATE",
                              ADMIN_PERMISSIONS)
            await other.rollback()
        account = await saving
    finally:
        other.close()
    assert account.full_name == "Dana Pop"
    assert db.stats().reruns == 1  # it lost once, and ran again
    async with db.transaction() as cur:
        await cur.execute("SELECT full_name FROM users WHERE id = %s", (user_id,))
        assert await cur.fetchone() == ("Dana Pop",)
        await cur.execute(
            "SELECT after_value FROM audit_log WHERE action = 'user.update' AND target = 'dana'")
        assert [json.loads(after) for (after,) in await cur.fetchall()] == [{"full_name": "Dana Pop"}]
