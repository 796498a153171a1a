"""Scan counts kept in summary tables (migrations 0005, 0008, 0010) and the one
way the totals and reports aggregate scans, in three modules by job:

- `tables`: the summary tables (each a `Rollup`), what a scan counts in them
  (`Fact`), and the hour, day and shift arithmetic of their keys;
- `writer`: the background task (`Summariser`) that keeps them;
- `query`: `aggregate`, which answers a `Question` from them;
and `figures`, the `Figures` every answer is made of.

A background task in each process folds new scans into every summary table in
id order, a batch per transaction, up to one watermark; the processes take
turns through a row lock they skip when it is taken. It reads a scan only once
it is `LAG` old: a scan's transaction is over by then (pool wait and statement
time are bounded far below it), so no lower id can still appear.

Each table holds scans, approved and rejected pieces per hour, shift or UTC
day and a few columns, shaped for some questions: the widest is scan_summary
(hour, station, operator, order, defect, re-scan); the report's days and shifts
read scan_shifts (whole shifts) and scan_hourly, its orders and operators the
daily tables, checker totals scan_checker_hourly. Shifts are a setting, so
scan_shifts holds one layout of them (`layout_of`), named in the database: the
summariser keeps it for its own settings and rebuilds it from scan_hourly when
it holds another; a report reads it only when it holds the report's layout up
to the watermark, and scan_hourly otherwise.

`aggregate` answers for a filter from the narrowest hourly table holding the
columns it needs, and the whole UTC days inside its range from a daily one,
plus the scans not summarised yet (the last `LAG` seconds) and the partial
hours at the ends of each range read from the scans themselves. Filters no
table can answer (a piece; a checker with anything but a station) read the
scans. Either way the figures are the same: scans, and pieces by their latest scan.
"""
