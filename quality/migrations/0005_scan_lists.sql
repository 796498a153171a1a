-- Indexes for the supervisors' scan lists and reports (quality/lists, quality/reports.py).
--
-- The list is ordered newest first by (created_at, id) and paged by seeking past
-- the last row seen; an index on (x, created_at) ends in the primary key, so
-- each filter's rows come out of its index already in that order and a page
-- reads only its own rows, however deep it is.
-- ix_scans_report covers every column the reports and totals read for a time
-- range, so their aggregates never touch the table rows.

ALTER TABLE scans
    ADD KEY ix_scans_created (created_at),
    ADD KEY ix_scans_order_time (order_code, created_at),
    ADD KEY ix_scans_checker1 (checker1_code, created_at),
    ADD KEY ix_scans_checker2 (checker2_code, created_at),
    ADD KEY ix_scans_verdict (approved, created_at),
    ADD KEY ix_scans_rescan (is_rescan, created_at),
    ADD KEY ix_scans_report (created_at, station, defect_code, approved, is_rescan, operator_code,
                             order_code, piece_code);
