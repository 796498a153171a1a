"""User accounts: creation, passwords, role, active flag, language and
e-mail address (unique, in any case), the `admin`
account every install has, the guard that keeps one administrator, and the
delegation rule: nobody grants what they do not hold.

Every change is audited (quality/audit.py) in its own transaction; the admin
pages and the `quality user ...` commands both come through here, and the
permission matrix (quality/admin/roles.py) through `changing`.
"""

from __future__ import annotations

import asyncio
import re
import secrets
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Concatenate, ParamSpec, TypeVar

from asyncmy.errors import IntegrityError

from quality import audit
from quality.audit import SYSTEM, Actor
from quality.db import DUPLICATE_KEY, Cursor, Database, error_code
from quality.fields import EMAIL, MAX_EMAIL, Field, trim, validate
from quality.http.sessions import end_user_sessions
from quality.i18n import LANGUAGES, lazy
from quality.passwords import hash_password
from quality.roles import id_of as role_named
from quality.roles import permissions_by_name
from quality.throttle import verify_counted

P = ParamSpec("P")
T = TypeVar("T")

USERNAME = re.compile(r"^[a-z0-9][a-z0-9._-]{1,63}$")
MIN_PASSWORD = 8
MAX_PASSWORD = 1024
# The address alert e-mails reach a user at (their language chosen per recipient:
# quality/alerts/outbox.py); the admin form and `quality user` check it here.
EMAIL_FIELD = Field("email", lazy("E-mail address"), EMAIL, "ana.pop@plant.example", MAX_EMAIL, trim,
                    required=False)
# An administrator is an active user whose role may manage both users and roles:
# with fewer, nobody could give those rights back.
ADMIN_PERMISSIONS = ("admin.users", "admin.roles")


class AccountError(ValueError):
    """A user name, role or password that cannot be used; the message says why,
    and `field` names the form field it belongs to, if one."""

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


class NoSuchUser(AccountError):
    """No account with that id or name."""


class LastAdmin(AccountError):
    """The change would leave no active administrator."""


@dataclass(frozen=True, slots=True)
class Account:
    id: int
    username: str
    full_name: str
    role: str
    active: bool
    must_change_password: bool
    created_at: datetime
    language: str  # a code of quality/i18n.py LANGUAGES, or "" for the plant's default
    email: str  # "" when none is known


def check_username(username: str) -> str:
    username = username.strip().lower()
    if not USERNAME.match(username):
        raise AccountError(
            lazy("The user name must be 2-64 characters: letters, digits, '.', '_' or '-'."), "username"
        )
    return username


def check_password(password: str) -> str:
    if len(password) < MIN_PASSWORD:
        raise AccountError(lazy("Password must be at least %(min)s characters.", min=MIN_PASSWORD),
                           "password")
    if len(password) > MAX_PASSWORD:
        raise AccountError(lazy("Password must be at most %(max)s characters.", max=MAX_PASSWORD),
                           "password")
    return password


async def role_id(cur: Cursor, role: str) -> int:
    found = await role_named(cur, role)
    if found is None:
        raise AccountError(lazy("No role named %(role)s.", role=repr(role)), "role")
    return found


# -- Delegation: nobody grants what they do not hold (SPEC §6 "Admin") --------
#
# An actor may create an account with a role, give a role, or edit, disable or
# reset the password of an account only when they hold every permission of the
# role given and of the account's current role. In the permission matrix they
# tick or untick only permissions they hold; they rename or delete a role only
# when they hold all of its permissions. The terminal and the app itself (an
# actor with no user id) are not bound.


@dataclass(frozen=True, slots=True)
class Attempt:
    """A change as its audit row would say it: what a refusal records."""

    action: str
    target: str
    before: audit.Values | None
    after: audit.Values | None


class NotDelegable(Exception):
    """The change involves permissions the actor does not hold. Nothing of it
    was written; `changing` audits the refusal."""

    def __init__(self, message: str, attempt: Attempt, not_held: list[str]) -> None:
        super().__init__(message)
        self.attempt = attempt
        self.not_held = not_held


@dataclass(frozen=True, slots=True)
class Grantor:
    """An actor with what they hold; `held` is None for the terminal and the app."""

    actor: Actor
    held: frozenset[str] | None

    @classmethod
    async def read(cls, cur: Cursor, actor: Actor, *, lock: bool = False) -> Grantor:
        """What `actor` holds now, from the database, never from a session: a
        disabled or deleted user holds nothing. `lock` (for a change) reads the
        latest commit and locks the actor's row and their role's permission rows
        until the transaction ends, so a demotion in flight is waited for and
        seen. (Exclusively: changing one's own account after a shared lock could
        deadlock with one's own password change on /account.)"""
        if actor.id is None:
            return cls(actor, None)
        await cur.execute(
            "SELECT rp.permission FROM users u JOIN role_permissions rp ON rp.role_id = u.role_id"
            " WHERE u.id = %s AND u.active" + (" FOR UPDATE" if lock else ""), (actor.id,))
        return cls(actor, frozenset(permission for (permission,) in await cur.fetchall()))

    def lacks(self, permissions: Iterable[str]) -> list[str]:
        """Those of `permissions` the actor does not hold, sorted."""
        return [] if self.held is None else sorted(set(permissions) - self.held)

    def may_give(self, permissions: Iterable[str]) -> bool:
        return not self.lacks(permissions)

    def check_role(self, role: str, permissions: Iterable[str], attempt: Attempt) -> None:
        """Giving `role`, or changing an account that has it."""
        if missing := self.lacks(permissions):
            raise NotDelegable(lazy(
                "Not allowed: the role %(role)s has permissions you do not hold (%(missing)s); only"
                " someone who holds them all may give it or change an account that has it.",
                role=role, missing=", ".join(missing)), attempt, missing)

    def check_role_kept(self, role: str, permissions: Iterable[str], attempt: Attempt) -> None:
        """Renaming or deleting `role`."""
        if missing := self.lacks(permissions):
            raise NotDelegable(lazy(
                "Not allowed: the role %(role)s has permissions you do not hold (%(missing)s); only"
                " someone who holds them all may rename or delete it.",
                role=role, missing=", ".join(missing)), attempt, missing)

    def check_matrix(self, role: str, before: frozenset[str], after: frozenset[str]) -> None:
        """Setting `role`'s permissions from `before` to `after` in the matrix."""
        if missing := self.lacks(before ^ after):
            raise NotDelegable(lazy(
                "Not saved: you may give a role, or take away, only permissions you hold yourself;"
                " you do not hold %(missing)s (role %(role)s).", role=role, missing=", ".join(missing)),
                Attempt("role.permissions", role, {"permissions": sorted(before)},
                        {"permissions": sorted(after)}), missing)


async def changing(db: Database, actor: Actor,
                   change: Callable[Concatenate[Cursor, Grantor, P], Awaitable[T]],
                   *args: P.args, **kwargs: P.kwargs) -> T:
    """`change(cursor, grantor, *args, **kwargs)` as the transaction of every
    change to accounts and roles: first the admin lock (so these changes run
    one at a time), then what `actor` holds, read locked. It goes through
    `Database.run`, so a change that lost to a concurrent one (a deadlock; on
    Galera a certification failure) runs again from the start: `change` must
    return what it decided rather than leave it anywhere outside. A
    `NotDelegable` raised inside rolls the change back, and is audited as
    `<action>.refused` in a transaction of its own."""
    async def locked(cur: Cursor) -> T:
        await lock_admins(cur)
        return await change(cur, await Grantor.read(cur, actor, lock=True), *args, **kwargs)

    try:
        return await db.run(locked)
    except NotDelegable as refusal:
        await db.run(_record_refusal, actor, refusal)
        raise


async def _record_refusal(cur: Cursor, actor: Actor, refusal: NotDelegable) -> None:
    attempt = refusal.attempt
    await audit.record(cur, actor, f"{attempt.action}.refused", attempt.target, attempt.before,
                       {**(attempt.after or {}), "not_held": ", ".join(refusal.not_held)})


async def _check_roles(cur: Cursor, grantor: Grantor, roles: Iterable[str], attempt: Attempt) -> None:
    """The account rule: the actor holds every permission of each of `roles`
    (the account's own, the one given)."""
    permissions = await permissions_by_name(cur)
    for role in dict.fromkeys(roles):
        grantor.check_role(role, permissions[role], attempt)


_ACCOUNT_SELECT = (
    "SELECT u.id, u.username, u.full_name, r.name, u.active, u.must_change_password, u.created_at,"
    " COALESCE(u.language, ''), COALESCE(u.email, '')"
    " FROM users u JOIN roles r ON r.id = u.role_id"
)


def _account(row: tuple[Any, ...]) -> Account:
    id_, username, full_name, role, active, must_change, created_at, language, email = row
    return Account(id_, username, full_name, role, bool(active), bool(must_change), created_at, language,
                   email)


def check_language(language: str) -> str:
    """A language the app speaks, or "" for the plant's default."""
    if language and language not in LANGUAGES:
        raise AccountError(lazy("Choose one of the languages offered."), "language")
    return language


def check_email(email: str) -> str:
    """An e-mail address, trimmed, or "" for none."""
    checked = validate({"email": email}, (EMAIL_FIELD,))
    if not checked.ok:
        raise AccountError(checked.errors["email"], "email")
    return checked.values["email"]


async def _ensure_email_free(cur: Cursor, email: str, user_id: int | None = None) -> None:
    """Refuse an address another account has (in any case: the column's
    collation ignores it, as its unique key does). Under `changing`'s lock, so
    no account change slips in between this and the write."""
    if not email:
        return
    await cur.execute("SELECT 1 FROM users WHERE email = %s AND id <> %s", (email, user_id or 0))
    if await cur.fetchone():
        raise _email_taken(email)


def _email_taken(email: str) -> AccountError:
    return AccountError(lazy("Another user already has the e-mail address %(email)s.", email=email), "email")


async def find_user(cur: Cursor, target: int | str, *, lock: bool = False) -> Account:
    """An account by id or user name; `lock` holds its row until the transaction ends."""
    column = "u.id" if isinstance(target, int) else "u.username"
    await cur.execute(f"{_ACCOUNT_SELECT} WHERE {column} = %s" + (" FOR UPDATE" if lock else ""),
                      (target,))
    row = await cur.fetchone()
    if row is None:
        raise NoSuchUser(lazy("No user named %(name)s.", name=repr(target)) if isinstance(target, str)
                         else lazy("No such user."))
    return _account(row)


async def list_users(cur: Cursor, search: str = "", role: str = "",
                     active: bool | None = None) -> list[Account]:
    """Accounts by user name; `search` matches user name, full name or e-mail
    address anywhere, in any case (the columns' collations ignore it)."""
    where, params = ["TRUE"], []
    if search:
        pattern = "%" + search.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        where.append("(u.username LIKE %s OR u.full_name LIKE %s OR u.email LIKE %s)")
        params += [pattern, pattern, pattern]
    if role:
        where.append("r.name = %s")
        params.append(role)
    if active is not None:
        where.append("u.active = %s")
        params.append(active)
    await cur.execute(f"{_ACCOUNT_SELECT} WHERE {' AND '.join(where)} ORDER BY u.username", params)
    return [_account(row) for row in await cur.fetchall()]


async def create_user(
    db: Database, username: str, password: str, role: str, full_name: str = "", *,
    actor: Actor = SYSTEM, must_change_password: bool = False, language: str = "", email: str = "",
) -> int:
    username = check_username(username)
    check_language(language)
    email = check_email(email)
    # Hash before borrowing a connection: scrypt takes tens of milliseconds.
    password_hash = await asyncio.to_thread(hash_password, check_password(password))
    wanted = {"full_name": full_name, "role": role, "active": True,
              "must_change_password": must_change_password, **({"language": language} if language else {}),
              **({"email": email} if email else {})}

    async def create(cur: Cursor, grantor: Grantor) -> int:
        await cur.execute("SELECT 1 FROM users WHERE username = %s", (username,))
        if await cur.fetchone():
            raise AccountError(lazy("User %(name)s already exists.", name=repr(username)), "username")
        new_role_id = await role_id(cur, role)
        await _check_roles(cur, grantor, [role], Attempt("user.create", username, None, wanted))
        await _ensure_email_free(cur, email)
        try:
            await cur.execute(
                "INSERT INTO users (username, full_name, password_hash, role_id, must_change_password,"
                " language, email) VALUES (%s, %s, %s, %s, %s, NULLIF(%s, ''), NULLIF(%s, ''))",
                (username, full_name, password_hash, new_role_id, must_change_password, language, email),
            )
        except IntegrityError as exc:
            # Another process took the name or the address between the check and here.
            if error_code(exc) != DUPLICATE_KEY:
                raise
            if "uq_users_email" in str(exc):
                raise _email_taken(email) from None
            raise AccountError(lazy("User %(name)s already exists.", name=repr(username)),
                               "username") from None
        user_id = cur.lastrowid
        await audit.record(cur, actor, "user.create", username, None, wanted)
        return user_id

    return await changing(db, actor, create)


async def set_password(db: Database, target: int | str, password: str, *,
                       actor: Actor = SYSTEM, must_change: bool = False) -> None:
    """Set a password (an admin's reset, or `quality user passwd`) and end that
    user's sessions everywhere; with `must_change` they choose a new one at
    their next sign-in."""
    password_hash = await asyncio.to_thread(hash_password, check_password(password))
    async def reset(cur: Cursor, grantor: Grantor) -> None:
        account = await find_user(cur, target, lock=True)
        attempt = Attempt("user.password.reset", account.username,
                          {"password": "(previous)", "must_change_password": account.must_change_password},
                          {"password": "(new)", "must_change_password": must_change})
        await _check_roles(cur, grantor, [account.role], attempt)
        await _store_password(cur, account.id, password_hash, must_change)
        await end_user_sessions(cur, account.id)
        await audit.record(cur, actor, attempt.action, attempt.target, attempt.before, attempt.after)

    await changing(db, actor, reset)


class WrongPassword(AccountError):
    """The current password given for a change is not the account's."""


async def change_own_password(db: Database, user_id: int, current: str, new: str, *,
                              actor: Actor, keep_session: bytes | None = None) -> None:
    """A user's own change: the current password is required, and every other
    session of theirs ends (`keep_session` is the one they are using). The
    current password is checked like a sign-in's, counted against the same
    counters (the actor's user name and address): `Throttled` when they refuse."""
    check_password(new)
    if new == current:
        raise AccountError(lazy("The new password must differ from the current one."), "new_password")
    credentials = await verify_counted(db, actor.name, actor.address, current)
    if credentials is None or credentials.user_id != user_id:
        raise WrongPassword(lazy("The current password is wrong."), "current_password")
    password_hash = await asyncio.to_thread(hash_password, new)
    async with db.transaction() as cur:
        account = await find_user(cur, user_id, lock=True)
        await _store_password(cur, account.id, password_hash, False)
        await end_user_sessions(cur, account.id, keep=keep_session)
        await audit.record(cur, actor, "user.password.change", account.username,
                           {"password": "(previous)"}, {"password": "(new)"})


async def _store_password(cur: Cursor, user_id: int, password_hash: str, must_change: bool) -> None:
    await cur.execute(
        "UPDATE users SET password_hash = %s, password_changed_at = UTC_TIMESTAMP(6),"
        " must_change_password = %s WHERE id = %s",
        (password_hash, must_change, user_id),
    )


async def update_user(
    db: Database, target: int | str, *, actor: Actor, full_name: str | None = None,
    role: str | None = None, active: bool | None = None, language: str | None = None,
    email: str | None = None,
) -> Account:
    """Change what is given (None keeps it; a `language` of "" is the plant's
    default, an `email` of "" none). Disabling ends the user's sessions;
    a role change applies from their next request. Refused with `LastAdmin` if
    no active administrator would remain, with `NotDelegable` if the account's
    role or the one given has a permission the actor lacks."""
    if language is not None:
        check_language(language)
    if email is not None:
        email = check_email(email)

    async def update(cur: Cursor, grantor: Grantor) -> Account:
        account = await find_user(cur, target, lock=True)
        wanted = {"full_name": full_name, "role": role, "active": active, "language": language,
                  "email": email}
        before = {key: getattr(account, key) for key, value in wanted.items()
                  if value is not None and value != getattr(account, key)}
        after = {key: wanted[key] for key in before}
        if not after:
            return account
        new_role_id = await role_id(cur, after.get("role", account.role))
        await _check_roles(cur, grantor, [account.role, after.get("role", account.role)],
                           Attempt("user.update", account.username, before, after))
        if "email" in after:
            await _ensure_email_free(cur, after["email"], account.id)
        try:
            await cur.execute(
                "UPDATE users SET full_name = %s, role_id = %s, active = %s, language = NULLIF(%s, ''),"
                " email = NULLIF(%s, '') WHERE id = %s",
                (after.get("full_name", account.full_name), new_role_id, after.get("active", account.active),
                 after.get("language", account.language), after.get("email", account.email), account.id),
            )
        except IntegrityError as exc:
            # Another process took the address between the check and here.
            if error_code(exc) != DUPLICATE_KEY:
                raise
            raise _email_taken(after["email"]) from None
        if after.get("active") is False:
            await end_user_sessions(cur, account.id)
        await ensure_an_admin_remains(cur)
        await audit.record(cur, actor, "user.update", account.username, before, after)
        return await find_user(cur, account.id)

    return await changing(db, actor, update)


async def store_rehash(cur: Cursor, user_id: int, password_hash: str) -> None:
    """The same password, hashed again at today's cost (at a sign-in); not a change."""
    await cur.execute("UPDATE users SET password_hash = %s WHERE id = %s", (password_hash, user_id))


async def set_language(cur: Cursor, user_id: int, language: str) -> None:
    """A user's choice of UI language (the users trigger moves auth_version, so
    every process drops the session it trusts and reads it again)."""
    await cur.execute("UPDATE users SET language = %s WHERE id = %s", (language, user_id))


async def lock_admins(cur: Cursor) -> None:
    """Serialise every change to accounts and roles (`changing` takes it first):
    each locks the rows of the two admin permissions, so two admins demoting
    each other at once run one after the other, and the second sees the first."""
    await cur.execute(
        "SELECT name FROM permissions WHERE name IN (%s, %s) FOR UPDATE", ADMIN_PERMISSIONS
    )
    await cur.fetchall()


async def ensure_an_admin_remains(cur: Cursor) -> None:
    """Raise LastAdmin when, with this transaction's changes, nobody active holds
    both admin permissions. Call after `lock_admins` and the change."""
    await cur.execute(
        "SELECT COUNT(*) FROM users u WHERE u.active AND ("
        " SELECT COUNT(*) FROM role_permissions rp"
        " WHERE rp.role_id = u.role_id AND rp.permission IN (%s, %s)) = 2",
        ADMIN_PERMISSIONS,
    )
    (admins,) = await cur.fetchone() or (0,)
    if admins == 0:
        raise LastAdmin(lazy(
            "This would leave no active administrator (someone whose role may manage users and"
            " roles); give another user that role first."
        ))


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
