"""The codes and stations are defined once in Python; where the database holds
a copy (the defect catalogue's approving code, the `station` ENUM columns), it
must equal that definition."""

from __future__ import annotations

import re

from quality.codes import APPROVED, CHECKER, DEFECT, OPERATOR, ORDER, PIECE
from quality.db import Database
from quality.pages.stations.form import scan_fields
from quality.scan_filter import filter_fields
from quality.settings import CodePatterns
from quality.stations import STATIONS


async def test_every_station_column_holds_exactly_the_stations(db: Database) -> None:
    async with db.transaction() as cur:
        await cur.execute(
            "SELECT table_name, column_type FROM information_schema.columns"
            " WHERE table_schema = DATABASE() AND column_name = 'station'")
        columns = dict(await cur.fetchall())
    assert len(columns) >= 9  # scans, the counters and every summary table
    for table, column_type in columns.items():
        assert re.findall(r"'([^']*)'", column_type) == list(STATIONS), table


async def test_the_catalogue_holds_the_approving_code_active_and_named_so(db: Database) -> None:
    async with db.transaction() as cur:
        await cur.execute("SELECT name, active FROM defect_codes WHERE code = %s", (APPROVED,))
        name, active = await cur.fetchone()
    assert active and "approved" in name.lower()


def test_the_forms_take_their_code_fields_from_one_definition() -> None:
    codes = CodePatterns(operator=r"OX\d{2}")
    by_name = {field.name: field for field in (*scan_fields(codes), *filter_fields(codes))}
    for name, code in (("operator_code", OPERATOR), ("operator", OPERATOR), ("piece_code", PIECE),
                       ("piece", PIECE), ("order", ORDER), ("checker1_code", CHECKER),
                       ("checker", CHECKER), ("defect_code", DEFECT), ("defect", DEFECT)):
        field = by_name[name]
        assert field.pattern is code.pattern(codes) and field.max_length == code.max_length, name
    assert by_name["operator"].pattern.fullmatch("OX12")
