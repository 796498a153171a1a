"""User accounts: creation, passwords, and the `admin` account every install has."""

from __future__ import annotations

import asyncio
import re
import secrets

from quality.db import Cursor, Database
from quality.passwords import hash_password
from quality.user_sessions import end_user_sessions

USERNAME = re.compile(r"^[a-z0-9][a-z0-9._-]{1,63}$")
MIN_PASSWORD = 8


class AccountError(ValueError):
    """A user name, role or password that cannot be used; the message says why."""


def check_username(username: str) -> str:
    username = username.strip().lower()
    if not USERNAME.match(username):
        raise AccountError(
            "user name must be 2-64 characters: letters, digits, '.', '_' or '-'"
        )
    return username


def check_password(password: str) -> str:
    if len(password) < MIN_PASSWORD:
        raise AccountError(f"password must be at least {MIN_PASSWORD} characters")
    if len(password) > 1024:
        raise AccountError("password must be at most 1024 characters")
    return password


async def role_id(cur: Cursor, role: str) -> int:
    await cur.execute("SELECT id FROM roles WHERE name = %s", (role,))
    row = await cur.fetchone()
    if row is None:
        raise AccountError(f"no role named {role!r}")
    return row[0]


async def create_user(
    db: Database, username: str, password: str, role: str, full_name: str = ""
) -> int:
    username = check_username(username)
    # Hash before borrowing a connection: scrypt takes tens of milliseconds.
    password_hash = await asyncio.to_thread(hash_password, check_password(password))
    async with db.transaction() as cur:
        await cur.execute("SELECT 1 FROM users WHERE username = %s", (username,))
        if await cur.fetchone():
            raise AccountError(f"user {username!r} already exists")
        await cur.execute(
            "INSERT INTO users (username, full_name, password_hash, role_id)"
            " VALUES (%s, %s, %s, %s)",
            (username, full_name, password_hash, await role_id(cur, role)),
        )
        return cur.lastrowid


async def set_password(db: Database, username: str, password: str) -> None:
    """Change a password and end that user's sessions everywhere."""
    password_hash = await asyncio.to_thread(hash_password, check_password(password))
    async with db.transaction() as cur:
        await cur.execute("SELECT id FROM users WHERE username = %s", (username,))
        row = await cur.fetchone()
        if row is None:
            raise AccountError(f"no user named {username!r}")
        await cur.execute(
            "UPDATE users SET password_hash = %s, password_changed_at = UTC_TIMESTAMP(6)"
            " WHERE id = %s",
            (password_hash, row[0]),
        )
        await end_user_sessions(cur, row[0])


async def ensure_admin(db: Database, password: str | None) -> str | None:
    """Create the `admin` account if missing; return a generated password to show once."""
    async with db.transaction() as cur:
        await cur.execute("SELECT 1 FROM users WHERE username = 'admin'")
        if await cur.fetchone():
            return None
    generated = None if password else secrets.token_urlsafe(12)
    try:
        await create_user(db, "admin", password or generated or "", "admin", "Administrator")
    except AccountError as exc:
        if "already exists" in str(exc):  # another process made it first
            return None
        raise
    return generated
