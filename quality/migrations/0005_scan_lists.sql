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

-- Scans per hour, station, operator, order, defect code and re-scan or not, kept by
-- quality/summary.py from the scans (record_scan is left alone): the totals and
-- reports read a few thousand of these rows instead of a million scans.
-- approved_pieces/rejected_pieces count pieces whose latest scan falls in the
-- row (a re-scan moves its piece from the earlier scan's row to its own).
CREATE TABLE scan_summary (
    hour INT UNSIGNED NOT NULL,  -- whole hours since 2000-01-01 00:00 UTC
    station ENUM('quality', 'fg') NOT NULL,
    operator_code VARCHAR(32) NOT NULL,
    order_code VARCHAR(32) NOT NULL,
    defect_code CHAR(3) NOT NULL,
    is_rescan BOOLEAN NOT NULL,
    scans INT UNSIGNED NOT NULL DEFAULT 0,
    approved_pieces INT NOT NULL DEFAULT 0,
    rejected_pieces INT NOT NULL DEFAULT 0,
    PRIMARY KEY (hour, station, operator_code, order_code, defect_code, is_rescan),
    KEY ix_summary_order (order_code, hour),
    KEY ix_summary_operator (operator_code, hour)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

-- The same without operator and order: a few rows an hour, for the totals and
-- report figures that do not look at operators or orders.
CREATE TABLE scan_hourly (
    hour INT UNSIGNED NOT NULL,
    station ENUM('quality', 'fg') NOT NULL,
    defect_code CHAR(3) NOT NULL,
    is_rescan BOOLEAN NOT NULL,
    scans INT UNSIGNED NOT NULL DEFAULT 0,
    approved_pieces INT NOT NULL DEFAULT 0,
    rejected_pieces INT NOT NULL DEFAULT 0,
    PRIMARY KEY (hour, station, defect_code, is_rescan)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

-- How far scan_summary and scan_hourly have read: every scan with an id up to here is in it.
CREATE TABLE scan_summary_state (
    id TINYINT UNSIGNED NOT NULL PRIMARY KEY,
    last_scan_id BIGINT UNSIGNED NOT NULL
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

INSERT INTO scan_summary_state (id, last_scan_id) VALUES (1, 0);
