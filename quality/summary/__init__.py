"""Scan counts kept in summary tables (migrations 0005, 0008, 0010) and the one
way the totals and reports aggregate scans, in three modules by job:

- `tables`: the summary tables (each a `Rollup`), what a scan counts in them
  (`Fact`), and the hour, day and shift arithmetic of their keys;
- `writer`: the background task (`Summariser`) that keeps them, and `rebuild`;
- `counters`: the save's counters (piece verdicts, order counts, operator
  counters, re-scan flags) derived again from the scans;
- `query`: `aggregate`, which answers a `Question` from them;
and `figures`, the `Figures` every answer is made of.

Every scan is queued (scan_queue, filled by a trigger however the scan was
stored) in its own transaction; a background task in each process folds the
queued scans into every summary table and takes them off the queue, a batch
per transaction; the processes take turns through a row lock they skip when it
is taken. A scan is thus in the summaries or in the queue, whatever order
transactions commit in. A piece counts at its scan of the highest id (the
save that happened last: record_scan locks the piece before inserting), in
every table and every read of the scans.

Each table holds scans, approved and rejected pieces per hour, shift or UTC
day and a few columns, shaped for some questions: the widest is scan_summary
(hour, station, operator, order, defect, re-scan); the report's days and shifts
read scan_shifts (whole shifts) and scan_hourly, its orders and operators the
daily tables, checker totals scan_checker_hourly. Shifts are a setting, so
scan_shifts holds one layout of them (`layout_of`), named in the database: the
summariser keeps it for its own settings and rebuilds it from scan_hourly when
it holds another; a report reads it only when it holds the report's layout (and the shifts
start on whole UTC hours), and scan_hourly otherwise.

`aggregate` answers for a filter from the narrowest hourly table holding the
columns it needs, and the whole UTC days inside its range from a daily one,
plus the queued scans and the partial hours at the ends of each range read
from the scans themselves, all in one snapshot. Filters no
table can answer (a piece; a checker with anything but a station) read the
scans. Either way the figures are the same: scans, and pieces by their latest scan.
"""
