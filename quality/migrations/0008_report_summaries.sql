-- Narrow summary tables, each shaped for one question (quality/summary.py keeps
-- them with scan_summary and scan_hourly, in the same transaction and up to the
-- same scan_summary_state.last_scan_id):
--   scan_daily_order     per UTC day, station and order: the reports' orders and
--                        the totals of whole days (no defect, operator, re-scan);
--   scan_daily_operator  per UTC day, station, operator and defect: the reports'
--                        operators with their top defects;
--   scan_checker_hourly  per hour, station and checker: the totals of a checker
--                        filter (a scan counts once under each distinct checker).
-- Days and hours count from 2000-01-01 00:00 UTC; approved/rejected_pieces count
-- the pieces whose latest scan falls in the row, as in scan_summary.
-- Each has a covering index led by what it is grouped by: over a long range the
-- server groups while reading that index in order (a short range reads the
-- primary key's few days), never through a temporary table.

CREATE TABLE scan_daily_order (
    day INT UNSIGNED NOT NULL,
    station ENUM('quality', 'fg') NOT NULL,
    order_code VARCHAR(32) NOT NULL,
    scans INT UNSIGNED NOT NULL DEFAULT 0,
    approved_pieces INT NOT NULL DEFAULT 0,
    rejected_pieces INT NOT NULL DEFAULT 0,
    PRIMARY KEY (day, station, order_code),
    KEY ix_daily_order_order (order_code, day, station, scans, approved_pieces, rejected_pieces)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

CREATE TABLE scan_daily_operator (
    day INT UNSIGNED NOT NULL,
    station ENUM('quality', 'fg') NOT NULL,
    operator_code VARCHAR(32) NOT NULL,
    defect_code CHAR(3) NOT NULL,
    scans INT UNSIGNED NOT NULL DEFAULT 0,
    approved_pieces INT NOT NULL DEFAULT 0,
    rejected_pieces INT NOT NULL DEFAULT 0,
    PRIMARY KEY (day, station, operator_code, defect_code),
    KEY ix_daily_operator_operator (operator_code, defect_code, day, station, scans, approved_pieces,
                                    rejected_pieces)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

CREATE TABLE scan_checker_hourly (
    hour INT UNSIGNED NOT NULL,
    station ENUM('quality', 'fg') NOT NULL,
    checker_code VARCHAR(32) NOT NULL,
    scans INT UNSIGNED NOT NULL DEFAULT 0,
    approved_pieces INT NOT NULL DEFAULT 0,
    rejected_pieces INT NOT NULL DEFAULT 0,
    PRIMARY KEY (hour, station, checker_code),
    KEY ix_checker_hourly_checker (checker_code, hour, station, scans, approved_pieces, rejected_pieces)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

-- The reports group scan_hourly by hour and defect: with the key in that order
-- the rows come out of it already grouped. Made anew rather than altered (a
-- DBA's user may create and drop tables without ALTER), and filled below.
DROP TABLE scan_hourly;

CREATE TABLE scan_hourly (
    hour INT UNSIGNED NOT NULL,
    station ENUM('quality', 'fg') NOT NULL,
    defect_code CHAR(3) NOT NULL,
    is_rescan BOOLEAN NOT NULL,
    scans INT UNSIGNED NOT NULL DEFAULT 0,
    approved_pieces INT NOT NULL DEFAULT 0,
    rejected_pieces INT NOT NULL DEFAULT 0,
    PRIMARY KEY (hour, defect_code, station, is_rescan)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

-- Fill them for the scans summarised already, holding the summariser's row lock
-- (a running app's summariser skips its turn meanwhile), so that all summary
-- tables end at the same scan; emptied first, in case a summariser wrote to
-- them before the lock was taken. scan_hourly and the daily tables are sums of
-- scan_summary's rows.
SELECT last_scan_id INTO @summarised FROM scan_summary_state WHERE id = 1 FOR UPDATE;

DELETE FROM scan_hourly;

DELETE FROM scan_daily_order;

DELETE FROM scan_daily_operator;

DELETE FROM scan_checker_hourly;

INSERT INTO scan_hourly (hour, station, defect_code, is_rescan, scans, approved_pieces, rejected_pieces)
SELECT hour, station, defect_code, is_rescan, SUM(scans), SUM(approved_pieces), SUM(rejected_pieces)
FROM scan_summary
GROUP BY hour, station, defect_code, is_rescan;

INSERT INTO scan_daily_order (day, station, order_code, scans, approved_pieces, rejected_pieces)
SELECT hour DIV 24, station, order_code, SUM(scans), SUM(approved_pieces), SUM(rejected_pieces)
FROM scan_summary
GROUP BY hour DIV 24, station, order_code;

INSERT INTO scan_daily_operator (day, station, operator_code, defect_code, scans, approved_pieces,
                                 rejected_pieces)
SELECT hour DIV 24, station, operator_code, defect_code, SUM(scans), SUM(approved_pieces),
       SUM(rejected_pieces)
FROM scan_summary
GROUP BY hour DIV 24, station, operator_code, defect_code;

-- Checkers are in no summary yet: read from the scans up to @summarised, each
-- piece counted at its latest scan among those (piece_verdicts has it, unless
-- the piece was scanned again since; then it is looked up).
INSERT INTO scan_checker_hourly (hour, station, checker_code, scans, approved_pieces, rejected_pieces)
SELECT c.hour, c.station, c.checker_code, COUNT(*), SUM(c.latest AND c.approved),
       SUM(c.latest AND NOT c.approved)
FROM (
    SELECT TIMESTAMPDIFF(HOUR, '2000-01-01 00:00:00', s.created_at) AS hour, s.station,
           CASE WHEN k.n = 1 THEN s.checker1_code ELSE s.checker2_code END AS checker_code, s.approved,
           CASE WHEN v.last_scan_id <= @summarised THEN v.last_scan_id = s.id
                ELSE s.id = (SELECT MAX(q.id) FROM scans q WHERE q.station = s.station
                             AND q.piece_code = s.piece_code AND q.id <= @summarised) END AS latest
    FROM scans s
    JOIN (SELECT 1 AS n UNION ALL SELECT 2) k ON k.n = 1 OR s.checker2_code <> s.checker1_code
    LEFT JOIN piece_verdicts v ON v.station = s.station AND v.piece_code = s.piece_code
    WHERE s.id <= @summarised
) c
GROUP BY c.hour, c.station, c.checker_code;
