"""The counters a save keeps (piece_verdicts, order_counts, operator_shift_scans,
scans.is_rescan), set right from the scans for scans that reached the table
other than through a save, and for `quality summary rebuild`.

One definition throughout (issue 22): a piece's latest scan at a station is
its scan of the highest id; a scan is a re-scan when the piece has one of a
lower id; an order counts the pieces whose latest scan names it, by that
scan's verdict. record_scan keeps them so (quality/routines/record_scan.sql);
here each is derived again, under the same locks a save takes (the piece's
row, then its orders'), so it is safe while the app saves: a save of the same
piece waits, and applies its change on top of what is set here.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable

from quality.db import Cursor, Database
from quality.shifts import Shifts
from quality.summary.tables import layout_of

Piece = tuple[str, str]  # station, piece code
Order = tuple[str, str]  # station, order code
CHUNK = 2000  # pieces or orders compared a statement


async def adopt(cur: Cursor, queued: list[int]) -> None:
    """Set the counters right for the queued scans no save counted: a save sets
    its piece's last_scan_id to its own id (or a later save's higher one), so a
    scan above it came by an INSERT of its own (an import, a DBA's fix, demo
    data before its counters were rebuilt). A few statements a batch, however
    many scans: the pieces' rows locked as a save locks them, then each piece
    moved to its highest scan where that is higher than what its row holds."""
    marks = ", ".join(["%s"] * len(queued))
    await cur.execute(
        "SELECT s.id, s.station, s.piece_code, s.order_code, s.approved, s.operator_code, s.created_at,"
        " s.is_rescan FROM scans s"
        " LEFT JOIN piece_verdicts v ON v.station = s.station AND v.piece_code = s.piece_code"
        f" WHERE s.id IN ({marks}) AND (v.last_scan_id IS NULL OR v.last_scan_id < s.id) ORDER BY s.id",
        queued)
    found = await cur.fetchall()
    if not found:
        return
    newest: dict[Piece, tuple] = {}
    for row in found:  # in id order: the last of a piece is its highest
        newest[row[1], row[2]] = row
    pieces = sorted(newest)
    # Each piece's row locked (made, for a piece new here), then read as it stands.
    await cur.executemany(
        "INSERT INTO piece_verdicts (station, piece_code, order_code, approved, last_scan_id)"
        " VALUES (%s, %s, '', FALSE, 0) ON DUPLICATE KEY UPDATE last_scan_id = last_scan_id", pieces)
    held = await _verdicts(cur, pieces)
    changes: Counter[tuple[str, str, bool]] = Counter()
    verdicts = []
    for piece in pieces:
        scan_id, station, code, order, approved = newest[piece][:5]
        before_order, before_approved, before_scan = held[piece]
        if before_scan >= scan_id:  # a save of a higher id came first
            continue
        if before_scan:
            changes[station, before_order, bool(before_approved)] -= 1
        changes[station, order, bool(approved)] += 1
        verdicts.append((station, code, order, approved, scan_id))
    # Rows this transaction holds: one multi-row statement sets them all.
    await cur.executemany(
        "INSERT INTO piece_verdicts (station, piece_code, order_code, approved, last_scan_id)"
        " VALUES (%s, %s, %s, %s, %s) ON DUPLICATE KEY UPDATE order_code = VALUES(order_code),"
        " approved = VALUES(approved), last_scan_id = VALUES(last_scan_id)", verdicts)
    await _count_orders(cur, changes)
    # Re-scan flags by the one definition (a lower id of the piece exists).
    await cur.execute(
        "SELECT s.id FROM scans s WHERE s.id IN (" + ", ".join(["%s"] * len(found)) + ") AND s.is_rescan <>"
        " EXISTS (SELECT 1 FROM scans p WHERE p.piece_code = s.piece_code AND p.station = s.station"
        " AND p.id < s.id)", [row[0] for row in found])
    # By primary key, one each: a statement over several would wait for a
    # transaction holding scans of its own (a long import's).
    await cur.executemany("UPDATE scans SET is_rescan = NOT is_rescan WHERE id = %s", await cur.fetchall())
    # The counters of these scans' shifts, under whichever shift settings made
    # them, no longer hold what is stored: gone, they count again at the
    # operator's next save or look (quality/scans/store.py operator_scans).
    spans: dict[tuple[str, str], list] = {}
    for row in found:
        span = spans.setdefault((row[1], row[5]), [row[6], row[6]])
        span[0], span[1] = min(span[0], row[6]), max(span[1], row[6])
    await cur.executemany("DELETE FROM operator_shift_scans WHERE station = %s AND operator_code = %s"
                          " AND shift_end > %s AND shift_start <= %s",
                          [(*key, first, last) for key, (first, last) in sorted(spans.items())])


async def _verdicts(cur: Cursor, pieces: list[Piece]) -> dict[Piece, tuple]:
    """The pieces' rows as they stand (locked by this transaction: committed and current)."""
    held: dict[Piece, tuple] = {}
    for first in range(0, len(pieces), CHUNK):
        chunk = pieces[first:first + CHUNK]
        await cur.execute(
            "SELECT station, piece_code, order_code, approved, last_scan_id FROM piece_verdicts"
            f" WHERE (station, piece_code) IN ({', '.join(['(%s, %s)'] * len(chunk))})",
            [value for piece in chunk for value in piece])
        held.update({(station, code): rest for station, code, *rest in await cur.fetchall()})
    return held


async def _count_orders(cur: Cursor, changes: Counter[tuple[str, str, bool]]) -> None:
    """Add pieces to and take them from the orders' counts, in key order (as saves lock them)."""
    for (station, order, approved), change in sorted(changes.items()):
        if change > 0:
            await cur.execute(
                "INSERT INTO order_counts (station, order_code, approved, rejected) VALUES (%s, %s, %s, %s)"
                " ON DUPLICATE KEY UPDATE approved = approved + VALUES(approved),"
                " rejected = rejected + VALUES(rejected)",
                (station, order, change if approved else 0, 0 if approved else change))
        elif change < 0:
            column = "approved" if approved else "rejected"
            await cur.execute(f"UPDATE order_counts SET {column} = {column} - %s"
                              " WHERE station = %s AND order_code = %s", (-change, station, order))


async def settle_pieces(cur: Cursor, pieces: Iterable[Piece]) -> set[Order]:
    """Each piece's verdict from its scan of the highest id, and its scans'
    re-scan flags; returns the orders whose counts may have changed."""
    orders: set[Order] = set()
    for station, piece in sorted(pieces):
        # Locked as record_scan locks it, before anything is read.
        await cur.execute(
            "INSERT INTO piece_verdicts (station, piece_code, order_code, approved, last_scan_id)"
            " VALUES (%s, %s, '', FALSE, 0) ON DUPLICATE KEY UPDATE last_scan_id = last_scan_id",
            (station, piece))
        await cur.execute("SELECT order_code, last_scan_id FROM piece_verdicts"
                          " WHERE station = %s AND piece_code = %s FOR UPDATE", (station, piece))
        before_order, before_scan = await cur.fetchone()
        await cur.execute("SELECT id, order_code, approved FROM scans WHERE piece_code = %s AND station = %s"
                          " ORDER BY id DESC LIMIT 1", (piece, station))
        latest = await cur.fetchone()
        if before_scan:
            orders.add((station, before_order))
        if latest is None:  # its scans were deleted
            await cur.execute("DELETE FROM piece_verdicts WHERE station = %s AND piece_code = %s",
                              (station, piece))
            continue
        scan_id, order, approved = latest
        orders.add((station, order))
        await cur.execute(
            "UPDATE piece_verdicts SET order_code = %s, approved = %s, last_scan_id = %s"
            " WHERE station = %s AND piece_code = %s", (order, approved, scan_id, station, piece))
        # Flags read without locking and set by primary key: a statement over
        # the piece's scans would wait for a transaction holding one of its own.
        await cur.execute("SELECT id, is_rescan FROM scans WHERE piece_code = %s AND station = %s"
                          " ORDER BY id", (piece, station))
        flags = await cur.fetchall()
        await cur.executemany("UPDATE scans SET is_rescan = %s WHERE id = %s",
                              [(n > 0, scan_id) for n, (scan_id, rescan) in enumerate(flags)
                               if bool(rescan) != (n > 0)])
    return orders


async def settle_orders(cur: Cursor, orders: Iterable[Order]) -> None:
    """Each order's approved and rejected pieces counted from piece_verdicts, its
    row locked first: a save changing one of its pieces meanwhile waits, and
    adds its change to the committed verdicts counted here."""
    for station, order in sorted(orders):
        await cur.execute("INSERT INTO order_counts (station, order_code, approved, rejected)"
                          " VALUES (%s, %s, 0, 0) ON DUPLICATE KEY UPDATE approved = approved",
                          (station, order))
        await cur.execute("SELECT 1 FROM order_counts WHERE station = %s AND order_code = %s FOR UPDATE",
                          (station, order))
        await cur.fetchall()
        await cur.execute(
            "SELECT COALESCE(SUM(v.approved), 0), COALESCE(SUM(NOT v.approved), 0) FROM scans s"
            " JOIN piece_verdicts v ON v.station = s.station AND v.piece_code = s.piece_code"
            " AND v.last_scan_id = s.id WHERE s.order_code = %s AND s.station = %s", (order, station))
        approved, rejected = await cur.fetchone()
        await cur.execute("UPDATE order_counts SET approved = %s, rejected = %s"
                          " WHERE station = %s AND order_code = %s", (approved, rejected, station, order))


async def settle_all(db: Database, progress: Callable[[int, int], None] | None = None) -> tuple[int, int]:
    """Compare every piece's and order's counters with the scans, a chunk a
    transaction, and settle those that differ (under their locks, so a save
    meanwhile is neither lost nor counted twice); then drop the operators'
    shift counters, which count again from the scans at the next save or look.
    Returns how many pieces were set right and orders counted again; `progress` is told the
    pieces compared and the pieces there are."""
    async with db.transaction() as cur:
        await cur.execute("SELECT COUNT(*) FROM piece_verdicts")
        (total,) = await cur.fetchone()
    after: tuple[str, int] = ("", 0)  # piece code, station's place in its ENUM (the index's order)
    pieces = compared = settled_orders = 0
    while True:
        async with db.transaction() as cur:
            # Each piece's highest and lowest scan ids, in ix_scans_piece's order,
            # beside what piece_verdicts holds for it.
            await cur.execute(
                "SELECT g.station, g.piece_code, g.place,"
                " v.last_scan_id IS NULL OR v.last_scan_id <> g.last OR v.approved <> l.approved"
                " OR v.order_code <> l.order_code OR g.rescans <> g.scans - 1"
                " FROM (SELECT station, station + 0 AS place, piece_code, MAX(id) AS last, COUNT(*) AS scans,"
                "       SUM(is_rescan) AS rescans FROM scans WHERE (piece_code, station + 0) > (%s, %s)"
                "       GROUP BY piece_code, station ORDER BY piece_code, station LIMIT %s) g"
                " JOIN scans l ON l.id = g.last"
                " LEFT JOIN piece_verdicts v ON v.station = g.station AND v.piece_code = g.piece_code"
                " ORDER BY g.piece_code, g.place", (*after, CHUNK))
            rows = await cur.fetchall()
            if not rows:
                break
            wrong = {(station, piece) for station, piece, _, differs in rows if differs}
            orders = await settle_pieces(cur, wrong)
            await settle_orders(cur, orders)
        settled_orders += len(orders)
        pieces += len(wrong)
        compared += len(rows)
        after = (rows[-1][1], rows[-1][2])  # in the server's collation, as the next chunk compares
        if progress:
            progress(compared, max(total, compared))
    settled_orders += await _settle_order_counts(db)
    async with db.transaction() as cur:
        await cur.execute("DELETE FROM operator_shift_scans")
    return pieces, settled_orders


async def _settle_order_counts(db: Database) -> int:
    """Every order whose counts differ from its pieces' verdicts, settled."""
    async with db.transaction() as cur:
        await cur.execute(
            "SELECT station, order_code, SUM(a), SUM(r), SUM(n) FROM ("
            " SELECT v.station, v.order_code, CAST(v.approved AS SIGNED) AS a,"
            "  CAST(NOT v.approved AS SIGNED) AS r, 0 AS n FROM piece_verdicts v"
            " UNION ALL SELECT station, order_code, 0, 0, 1 FROM order_counts) t"
            " GROUP BY station, order_code")
        counted = {(station, order): (int(a), int(r)) for station, order, a, r, _ in await cur.fetchall()}
        await cur.execute("SELECT station, order_code, approved, rejected FROM order_counts")
        stored = {(station, order): (a, r) for station, order, a, r in await cur.fetchall()}
    wrong = [order for order, figures in counted.items() if stored.get(order) != figures]
    for first in range(0, len(wrong), CHUNK):
        async with db.transaction() as cur:
            await settle_orders(cur, wrong[first:first + CHUNK])
    return len(wrong)


async def follow_layout(db: Database, shifts: Shifts) -> bool:
    """At a process's start: when the operator counters were kept under other
    shift settings, drop them all (they count again from the scans at each
    operator's next save or look) and record these; returns whether it did."""
    layout = layout_of(shifts)
    async with db.transaction() as cur:
        await cur.execute("SELECT layout FROM operator_shift_layout WHERE id = 1 FOR UPDATE")
        found = await cur.fetchone()
        if found is not None and found[0] == layout:
            return False
        await cur.execute("DELETE FROM operator_shift_scans")
        await cur.execute("INSERT INTO operator_shift_layout (id, layout) VALUES (1, %s)"
                          " ON DUPLICATE KEY UPDATE layout = VALUES(layout)", (layout,))
    return True
