-- Summaries that cannot miss a row (issue 22): the summariser no longer reads
-- scans by id above a watermark (a transaction holding a lower id may commit
-- after a higher one, and was then missed for good); every scan, however it
-- reaches the table (a save, `quality demo-data`, an import, a DBA's INSERT),
-- is queued by a trigger in its own transaction, and the summariser folds the
-- queued scans and deletes them from the queue in one transaction. A scan is
-- thus either in the summary tables or in scan_queue, never both, never
-- neither, whatever order transactions commit in; a future-dated scan is
-- folded like any other (its hour is read when a range reaches it).
--
-- * scan_queue: the scans not folded into the summaries yet.
-- * summary_pieces: each piece's latest scan (the highest id, as
--   piece_verdicts) among the folded ones: where the summaries count the piece.
--   Folding a scan of a higher id moves the piece there.
-- * operator_shift_scans: keyed by the shift's end as well as its start, so a
--   counter kept under other shift settings (QUALITY_SHIFTS,
--   QUALITY_TIMEZONE) is never taken for this shift's: a changed layout starts
--   new rows, each counting the scans stored in its shift at its first save.
--   Made anew (a DBA's user may create and drop tables without ALTER); the
--   rows recount themselves at the shift's next save.
-- * operator_shift_layout: the shift settings the counters were kept under; a
--   process starting under others empties operator_shift_scans (its rows
--   recount at the next save), so going back to earlier settings never
--   resumes a counter that missed the scans saved meanwhile.
-- scan_summary_state.last_scan_id and scan_shift_state.last_scan_id are no
-- longer read; their rows stay as the summariser's turn lock and layout.

CREATE TABLE scan_queue (
    scan_id BIGINT UNSIGNED NOT NULL PRIMARY KEY
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

CREATE TABLE summary_pieces (
    station ENUM('quality', 'fg') NOT NULL,
    piece_code VARCHAR(64) NOT NULL,
    scan_id BIGINT UNSIGNED NOT NULL,
    PRIMARY KEY (station, piece_code)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

CREATE TRIGGER scans_queue AFTER INSERT ON scans FOR EACH ROW
    INSERT INTO scan_queue (scan_id) VALUES (NEW.id);

-- What the old watermark held is folded; the rest is queued. Under the
-- summariser's row lock, so no summariser moves the watermark meanwhile.
SELECT last_scan_id INTO @summarised FROM scan_summary_state WHERE id = 1 FOR UPDATE;

INSERT INTO scan_queue (scan_id) SELECT id FROM scans WHERE id > @summarised;

INSERT INTO summary_pieces (station, piece_code, scan_id)
SELECT station, piece_code, MAX(id) FROM scans WHERE id <= @summarised GROUP BY station, piece_code;

DROP TABLE operator_shift_scans;

CREATE TABLE operator_shift_scans (
    station ENUM('quality', 'fg') NOT NULL,
    operator_code VARCHAR(32) NOT NULL,
    shift_start DATETIME NOT NULL,  -- UTC
    shift_end DATETIME NOT NULL,  -- UTC
    scans INT UNSIGNED NOT NULL,
    PRIMARY KEY (station, operator_code, shift_start, shift_end)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

CREATE TABLE operator_shift_layout (
    id TINYINT UNSIGNED NOT NULL PRIMARY KEY,
    layout VARCHAR(255) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;
