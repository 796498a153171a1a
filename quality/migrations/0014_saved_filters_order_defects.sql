-- Filters a user saved by name (quality/saved_filters.py): the scan list's
-- query string as the list writes it, so the saved link is the shareable one.
-- A user's names are unique; the filters go with their user.

CREATE TABLE saved_filters (
    id INT UNSIGNED AUTO_INCREMENT PRIMARY KEY,
    user_id INT UNSIGNED NOT NULL,
    name VARCHAR(60) NOT NULL,
    query VARCHAR(2000) NOT NULL,
    created_at DATETIME(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
    UNIQUE KEY uq_saved_filters_name (user_id, name),
    CONSTRAINT fk_saved_filters_user FOREIGN KEY (user_id) REFERENCES users (id) ON DELETE CASCADE
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

-- Per UTC day, station, order and defect (quality/summary/tables.py keeps it
-- with the other summaries, up to the same watermark): orders asked with a
-- defect or a verdict (the list grouped by order with "rejected only", a
-- report's orders with their top defects) over whole days, where before only
-- scan_summary's hours held them. Its covering index, led by the order,
-- groups while reading in order.
CREATE TABLE scan_daily_order_defect (
    day INT UNSIGNED NOT NULL,
    station ENUM('quality', 'fg') NOT NULL,
    order_code VARCHAR(32) NOT NULL,
    defect_code CHAR(3) NOT NULL,
    scans INT UNSIGNED NOT NULL DEFAULT 0,
    approved_pieces INT NOT NULL DEFAULT 0,
    rejected_pieces INT NOT NULL DEFAULT 0,
    PRIMARY KEY (day, station, order_code, defect_code),
    KEY ix_daily_order_defect_order (order_code, defect_code, day, station, scans, approved_pieces,
                                     rejected_pieces)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

-- Filled from scan_summary for the scans summarised already, holding the
-- summariser's row lock (a running app's summariser skips its turn meanwhile),
-- emptied first in case a summariser wrote to it before the lock was taken.
SELECT last_scan_id INTO @summarised FROM scan_summary_state WHERE id = 1 FOR UPDATE;

DELETE FROM scan_daily_order_defect;

INSERT INTO scan_daily_order_defect (day, station, order_code, defect_code, scans, approved_pieces,
                                     rejected_pieces)
SELECT hour DIV 24, station, order_code, defect_code, SUM(scans), SUM(approved_pieces), SUM(rejected_pieces)
FROM scan_summary
GROUP BY hour DIV 24, station, order_code, defect_code;
