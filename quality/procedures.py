"""Stored procedures: one current copy of each in `quality/routines/NAME.sql`,
(re-)created by `quality migrate` when its file changes, and called by name
with named parameters.

The migrations that once pasted a procedure whole (0002, 0003, 0006, 0007,
0009) stay as they ran in plants; after the migrations, `apply` creates each
procedure from its file again wherever the file's checksum differs from the one
recorded in `schema_routines` (or a migration ran just now, and may have
replaced one), so an old database and a new one end with the same procedures.
It runs in the migrations' session: under their lock, the app's sql_mode and
collation, which a procedure keeps for good.

MariaDB's CALL takes its arguments by position only; `call` takes them by the
parameter names the file declares (without their `p_`), so no call site counts
thirteen placeholders.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from quality.db import CHARSET, COLLATION, Cursor

ROUTINES_DIR = Path(__file__).parent / "routines"
_FILE_NAME = re.compile(r"^([a-z][a-z0-9_]*)\.sql$")
_PARAMETER = re.compile(r"^\s*(?:IN|OUT|INOUT)\s+(?:p_)?(\w+)\s", re.M)

log = logging.getLogger(__name__)


class RoutineError(RuntimeError):
    """A routine file that cannot be applied, or a call that does not fit it."""


@dataclass(frozen=True)
class Routine:
    name: str
    text: str  # the file: comment lines, then one CREATE PROCEDURE statement

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.text.encode()).hexdigest()

    @property
    def statement(self) -> str:
        """The CREATE PROCEDURE statement, without the file's leading comments."""
        lines = self.text.splitlines()
        while lines and (not lines[0].strip() or lines[0].lstrip().startswith("--")):
            lines.pop(0)
        return "\n".join(lines).strip()

    @property
    def body(self) -> str:
        """From BEGIN to END: what the server keeps as the routine's definition."""
        statement = self.statement
        return statement[re.search(r"^BEGIN\b", statement, re.M).start():]  # type: ignore[union-attr]

    @property
    def parameters(self) -> tuple[str, ...]:
        """The parameter names in order, without their `p_`."""
        head = self.statement[: self.statement.index("\nBEGIN")]
        return tuple(_PARAMETER.findall(head))


def routines(directory: Path = ROUTINES_DIR) -> dict[str, Routine]:
    """The routines in the tree, by name; each file creates the procedure it is named after."""
    found = {}
    for path in sorted(directory.glob("*.sql")):
        match = _FILE_NAME.match(path.name)
        routine = Routine(match[1] if match else "", path.read_text())
        if not match or not routine.statement.startswith(f"CREATE PROCEDURE {routine.name}("):
            raise RoutineError(f"{path.name} must hold one CREATE PROCEDURE of the name it has")
        found[routine.name] = routine
    return found


async def _recorded(cur: Cursor) -> dict[str, str]:
    await cur.execute(
        "CREATE TABLE IF NOT EXISTS schema_routines ("
        " name VARCHAR(64) NOT NULL PRIMARY KEY,"
        " checksum CHAR(64) NOT NULL,"
        " applied_at DATETIME(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6)"
        f") ENGINE=InnoDB DEFAULT CHARSET={CHARSET} COLLATE={COLLATION}"
    )
    await cur.execute("SELECT name, checksum FROM schema_routines")
    return dict(await cur.fetchall())


async def apply(cur: Cursor, directory: Path = ROUTINES_DIR, *, everything: bool = False) -> list[str]:
    """Create each routine whose file changed since it was last applied (all of
    them with `everything`); returns their names. Call it in the migrations'
    session, under their lock."""
    recorded = await _recorded(cur)
    applied = []
    for routine in routines(directory).values():
        if not everything and recorded.get(routine.name) == routine.checksum:
            continue
        # DROP + CREATE, as the migrations did: MySQL has no CREATE OR REPLACE.
        await cur.execute(f"DROP PROCEDURE IF EXISTS {routine.name}")
        await cur.execute(routine.statement)
        await cur.execute(
            "INSERT INTO schema_routines (name, checksum) VALUES (%s, %s)"
            " ON DUPLICATE KEY UPDATE checksum = VALUES(checksum), applied_at = CURRENT_TIMESTAMP(6)",
            (routine.name, routine.checksum))
        await cur.execute("COMMIT")
        log.info("applied routine %s", routine.name)
        applied.append(routine.name)
    return applied


async def stale(cur: Cursor, directory: Path = ROUTINES_DIR) -> list[str]:
    """The routines whose files changed since they were applied (`apply` would create them)."""
    await cur.execute(
        "SELECT COUNT(*) FROM information_schema.tables"
        " WHERE table_schema = DATABASE() AND table_name = 'schema_routines'")
    (exists,) = await cur.fetchone() or (0,)
    recorded: dict[str, str] = {}
    if exists:
        await cur.execute("SELECT name, checksum FROM schema_routines")
        recorded = dict(await cur.fetchall())
    return [routine.name for routine in routines(directory).values()
            if recorded.get(routine.name) != routine.checksum]


async def to_apply(cur: Cursor, directory: Path = ROUTINES_DIR, *, everything: bool = False) -> list[str]:
    """The routines `apply` would create: all of them with `everything`, else the stale ones."""
    return list(routines(directory)) if everything else await stale(cur, directory)


def statements(names: list[str], directory: Path = ROUTINES_DIR) -> list[str]:
    """What `apply` sends to create these routines (for the migrations' preflight)."""
    tree = routines(directory)
    return [sql for name in names for sql in (f"DROP PROCEDURE IF EXISTS {name}", tree[name].statement)]


@functools.cache
def _parameters(name: str) -> tuple[str, ...]:
    routine = routines().get(name)
    if routine is None:
        raise RoutineError(f"no routine {name} in {ROUTINES_DIR}")
    return routine.parameters


async def call(cur: Cursor, name: str, **arguments: Any) -> None:
    """CALL a routine with its arguments by parameter name; every parameter must be given."""
    parameters = _parameters(name)
    if set(arguments) != set(parameters):
        missing, unknown = set(parameters) - set(arguments), set(arguments) - set(parameters)
        raise RoutineError(f"{name}: missing {sorted(missing)}, unknown {sorted(unknown)}")
    await cur.execute(f"CALL {name}({', '.join(['%s'] * len(parameters))})",
                      tuple(arguments[parameter] for parameter in parameters))
