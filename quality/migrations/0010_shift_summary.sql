-- Per-shift summary for the reports' days and shifts: a 90-day report read
-- 2,160 hours times their defects (some 15,000 rows); by shift it reads 270.
--
-- scan_shifts has scan_hourly's columns, keyed by the shift instead of the hour:
-- shift_hour is the shift's first whole hour, counted like scan_hourly's hours
-- (from 2000-01-01 00:00 UTC). Shifts are a setting (QUALITY_SHIFTS in the
-- plant's QUALITY_TIMEZONE), so the table holds the shifts of one layout,
-- named in scan_shift_state, up to its own last_scan_id. The summariser keeps it
-- with the other summary tables when its layout is the stored one and rebuilds
-- it from scan_hourly otherwise (quality.summary); the reports read it only
-- when it holds their layout up to the other tables' last_scan_id. It starts
-- empty: the first summariser to run builds it for its settings.

CREATE TABLE scan_shifts (
    shift_hour INT UNSIGNED NOT NULL,
    station ENUM('quality', 'fg') NOT NULL,
    defect_code CHAR(3) NOT NULL,
    is_rescan BOOLEAN NOT NULL,
    scans INT UNSIGNED NOT NULL DEFAULT 0,
    approved_pieces INT NOT NULL DEFAULT 0,
    rejected_pieces INT NOT NULL DEFAULT 0,
    PRIMARY KEY (shift_hour, defect_code, station, is_rescan)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

CREATE TABLE scan_shift_state (
    id TINYINT UNSIGNED NOT NULL PRIMARY KEY,
    layout VARCHAR(255) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL,
    last_scan_id BIGINT UNSIGNED NOT NULL,
    built_at DATETIME(6) NOT NULL
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;
