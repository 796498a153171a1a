-- record_scan: a scan, its piece's latest verdict, its order's approved and
-- rejected piece counts and its operator's scans this shift, saved and
-- committed in one round trip (quality/scans/store.py calls it). Returns the
-- scan's id, whether it is a re-scan, its defect's name, the order's counts,
-- the verdict the save replaced (NULL for a piece's first scan here), the
-- operator's count this shift and the scan's stored time. The verdict comes
-- from the caller (p_approved): which defect code approves is decided in
-- Python (quality/codes.py). Ends with COMMIT, so quality/db.py sends none of
-- its own.
--
-- A piece's latest scan is its scan of the highest id (issue 22): the piece's
-- row in piece_verdicts is locked before the scan is inserted, so saves of one
-- piece take their ids one after the other, each once the one before it has
-- committed, and its time is never earlier than the scan it replaces when
-- that one is of the same shift (p_at, or that scan's time if the caller's
-- clock is behind): id order, time order and piece_verdicts agree, except
-- after a scan stored by hand with a time past this shift. A piece scanned again under another
-- order moves to that order's counts.
--
-- The one current copy: `quality migrate` re-creates it when this file
-- changes (quality/procedures.py). Migrations 0002, 0003 and 0009 hold the
-- versions plants have run.

CREATE PROCEDURE record_scan(
    IN p_station VARCHAR(8) CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci,
    IN p_submission BINARY(16),
    IN p_operator VARCHAR(32) CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci,
    IN p_piece VARCHAR(64) CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci,
    IN p_order VARCHAR(32) CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci,
    IN p_checker1 VARCHAR(32) CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci,
    IN p_checker2 VARCHAR(32) CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci,
    IN p_defect CHAR(3) CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci,
    IN p_approved BOOLEAN,
    IN p_user INT UNSIGNED,
    IN p_at DATETIME(6),
    IN p_shift_start DATETIME,
    IN p_shift_end DATETIME
)
MODIFIES SQL DATA
BEGIN
    DECLARE v_previous BOOLEAN;
    DECLARE v_previous_scan BIGINT UNSIGNED;
    DECLARE v_previous_order VARCHAR(32) CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci;
    DECLARE v_before DATETIME(6);
    DECLARE v_at DATETIME(6);
    DECLARE v_scan BIGINT UNSIGNED;
    DECLARE v_stored INT UNSIGNED;

    IF NOT EXISTS (SELECT 1 FROM defect_codes WHERE code = p_defect AND active) THEN
        SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = 'unknown defect code', MYSQL_ERRNO = 30001;
    END IF;

    -- The piece's row, locked first (a new piece's with last_scan_id 0 until
    -- its scan has an id): a concurrent save of the piece waits here.
    INSERT INTO piece_verdicts (station, piece_code, order_code, approved, last_scan_id)
    VALUES (p_station, p_piece, p_order, p_approved, 0)
    ON DUPLICATE KEY UPDATE last_scan_id = last_scan_id;
    SELECT approved, last_scan_id, order_code INTO v_previous, v_previous_scan, v_previous_order
    FROM piece_verdicts WHERE station = p_station AND piece_code = p_piece FOR UPDATE;
    -- Never before the scan it replaces when that one is of this shift (a
    -- concurrent save whose clock ran ahead); one stored by hand for a later
    -- shift (a future date) is left alone, so this scan stays in the shift it
    -- counts in.
    SET v_before = (SELECT created_at FROM scans WHERE id = v_previous_scan);
    SET v_at = IF(v_before > p_at AND v_before < p_shift_end, v_before, p_at);

    INSERT INTO scans (station, submission_id, operator_code, piece_code, order_code,
                       checker1_code, checker2_code, defect_code, approved, is_rescan,
                       created_at, created_by)
    VALUES (p_station, p_submission, p_operator, p_piece, p_order,
            p_checker1, p_checker2, p_defect, p_approved, v_previous_scan <> 0, v_at, p_user);
    SET v_scan = LAST_INSERT_ID();

    UPDATE piece_verdicts SET order_code = p_order, approved = p_approved, last_scan_id = v_scan
    WHERE station = p_station AND piece_code = p_piece;
    IF v_previous_scan <> 0 AND (v_previous_order <> p_order OR v_previous <> p_approved) THEN
        UPDATE order_counts
        SET approved = approved - IF(v_previous, 1, 0), rejected = rejected - IF(v_previous, 0, 1)
        WHERE station = p_station AND order_code = v_previous_order;
    END IF;
    IF v_previous_scan = 0 OR v_previous_order <> p_order OR v_previous <> p_approved THEN
        INSERT INTO order_counts (station, order_code, approved, rejected)
        VALUES (p_station, p_order, p_approved, NOT p_approved)
        ON DUPLICATE KEY UPDATE approved = approved + VALUES(approved),
                                rejected = rejected + VALUES(rejected);
    END IF;

    UPDATE operator_shift_scans SET scans = scans + 1
    WHERE station = p_station AND operator_code = p_operator AND shift_start = p_shift_start
      AND shift_end = p_shift_end;
    IF ROW_COUNT() = 0 THEN
        -- The shift's first save here (under these shift settings): count what
        -- is stored (this scan included), a plain read apart from the INSERT,
        -- which would lock what it read and wait for the operator's saves still
        -- open elsewhere. A concurrent first save of the same operator that
        -- inserts first has counted itself; then this adds one.
        SELECT COUNT(*) INTO v_stored FROM scans
        WHERE operator_code = p_operator AND created_at >= p_shift_start
          AND created_at < p_shift_end AND station = p_station;
        INSERT INTO operator_shift_scans (station, operator_code, shift_start, shift_end, scans)
        VALUES (p_station, p_operator, p_shift_start, p_shift_end, v_stored)
        ON DUPLICATE KEY UPDATE scans = scans + 1;
    END IF;

    SELECT v_scan, v_previous_scan <> 0, d.name, d.name_ro, c.approved, c.rejected,
           p.approved, p.defect_code, p.defect_name, p.defect_name_ro, o.scans, v_at
    FROM order_counts c
    JOIN defect_codes d ON d.code = p_defect
    JOIN operator_shift_scans o
      ON o.station = p_station AND o.operator_code = p_operator AND o.shift_start = p_shift_start
         AND o.shift_end = p_shift_end
    LEFT JOIN scans p ON p.id = v_previous_scan
    WHERE c.station = p_station AND c.order_code = p_order;
    COMMIT;
END
