"""Roles and their permissions: the one module that reads and writes the
`roles` and `role_permissions` tables. The admin pages (quality/pages/admin/)
and accounts (quality/accounts.py) call these inside their own transactions,
where the delegation rule, the last administrator and the audit row are
checked and written; nothing here audits or refuses on its own."""

from __future__ import annotations

from dataclasses import dataclass

from quality.db import Cursor


@dataclass(frozen=True, slots=True)
class Role:
    id: int
    name: str
    description: str
    users: int  # accounts given it
    permissions: frozenset[str]


async def all_roles(cur: Cursor, lock: bool = False) -> dict[int, Role]:
    """Every role by id, ordered by name; `lock` holds their rows."""
    await cur.execute(
        "SELECT r.id, r.name, r.description, (SELECT COUNT(*) FROM users u WHERE u.role_id = r.id)"
        " FROM roles r ORDER BY r.name" + (" FOR UPDATE" if lock else "")
    )
    rows = await cur.fetchall()
    await cur.execute("SELECT role_id, permission FROM role_permissions")
    granted: dict[int, set[str]] = {}
    for role_id, permission in await cur.fetchall():
        granted.setdefault(role_id, set()).add(permission)
    return {id_: Role(id_, name, description, users, frozenset(granted.get(id_, ())))
            for id_, name, description, users in rows}


async def names(cur: Cursor) -> list[str]:
    await cur.execute("SELECT name FROM roles ORDER BY name")
    return [name for (name,) in await cur.fetchall()]


async def permissions_by_name(cur: Cursor) -> dict[str, frozenset[str]]:
    """Every role's permissions, by role name."""
    await cur.execute("SELECT r.name, rp.permission FROM roles r"
                      " LEFT JOIN role_permissions rp ON rp.role_id = r.id")
    found: dict[str, set[str]] = {}
    for role, permission in await cur.fetchall():
        found.setdefault(role, set()).update([permission] if permission else [])
    return {role: frozenset(permissions) for role, permissions in found.items()}


async def id_of(cur: Cursor, name: str) -> int | None:
    await cur.execute("SELECT id FROM roles WHERE name = %s", (name,))
    row = await cur.fetchone()
    return None if row is None else row[0]


async def locked(cur: Cursor, role_id: int) -> tuple[str, str] | None:
    """A role's name and description, its row held until the transaction ends."""
    await cur.execute("SELECT name, description FROM roles WHERE id = %s FOR UPDATE", (role_id,))
    return await cur.fetchone()


async def name_taken(cur: Cursor, name: str) -> bool:
    await cur.execute("SELECT 1 FROM roles WHERE name = %s", (name,))
    return await cur.fetchone() is not None


async def create(cur: Cursor, name: str, description: str) -> None:
    await cur.execute("INSERT INTO roles (name, description) VALUES (%s, %s)", (name, description))


async def rename(cur: Cursor, role_id: int, name: str) -> None:
    await cur.execute("UPDATE roles SET name = %s WHERE id = %s", (name, role_id))


async def delete_unless_given(cur: Cursor, role_id: int) -> int:
    """Delete a role nobody has; returns how many accounts have it (then it stays).
    Locks its accounts, so nobody is given the role while it goes."""
    await cur.execute("SELECT COUNT(*) FROM users WHERE role_id = %s FOR UPDATE", (role_id,))
    (users,) = await cur.fetchone() or (0,)
    if not users:
        await cur.execute("DELETE FROM roles WHERE id = %s", (role_id,))
    return users


async def change_permissions(cur: Cursor, role_id: int, added: list[str], removed: list[str]) -> None:
    if removed:
        await cur.execute(
            f"DELETE FROM role_permissions WHERE role_id = %s"
            f" AND permission IN ({', '.join(['%s'] * len(removed))})", (role_id, *removed))
    if added:
        await cur.executemany("INSERT INTO role_permissions (role_id, permission) VALUES (%s, %s)",
                              [(role_id, name) for name in added])
