-- record_scan: a scan, its piece's latest verdict, its order's approved and
-- rejected piece counts and its operator's scans this shift, saved and
-- committed in one round trip (quality/scans/store.py calls it). Returns the
-- scan's id, whether it is a re-scan, its defect's name, the order's counts,
-- the verdict the save replaced (NULL for a piece's first scan here) and the
-- operator's count this shift. The verdict comes from the caller (p_approved):
-- which defect code approves is decided in Python (quality/codes.py). Ends
-- with COMMIT, so quality/db.py sends none of its own.
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
    DECLARE v_previous BOOLEAN DEFAULT NULL;
    DECLARE v_previous_scan BIGINT UNSIGNED DEFAULT NULL;
    DECLARE v_scan BIGINT UNSIGNED;
    DECLARE v_stored INT UNSIGNED;
    DECLARE CONTINUE HANDLER FOR NOT FOUND SET v_previous = NULL;

    IF NOT EXISTS (SELECT 1 FROM defect_codes WHERE code = p_defect AND active) THEN
        SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = 'unknown defect code', MYSQL_ERRNO = 30001;
    END IF;

    INSERT INTO scans (station, submission_id, operator_code, piece_code, order_code,
                       checker1_code, checker2_code, defect_code, approved, is_rescan,
                       created_at, created_by)
    VALUES (p_station, p_submission, p_operator, p_piece, p_order,
            p_checker1, p_checker2, p_defect, p_approved, FALSE, p_at, p_user);
    SET v_scan = LAST_INSERT_ID();

    SELECT approved, last_scan_id INTO v_previous, v_previous_scan FROM piece_verdicts
    WHERE station = p_station AND piece_code = p_piece FOR UPDATE;

    IF v_previous IS NULL THEN
        INSERT INTO piece_verdicts (station, piece_code, order_code, approved, last_scan_id)
        VALUES (p_station, p_piece, p_order, p_approved, v_scan);
        INSERT INTO order_counts (station, order_code, approved, rejected)
        VALUES (p_station, p_order, p_approved, NOT p_approved)
        ON DUPLICATE KEY UPDATE approved = approved + VALUES(approved),
                                rejected = rejected + VALUES(rejected);
    ELSE
        UPDATE scans SET is_rescan = TRUE WHERE id = v_scan;
        UPDATE piece_verdicts SET approved = p_approved, last_scan_id = v_scan
        WHERE station = p_station AND piece_code = p_piece;
        IF v_previous <> p_approved THEN
            UPDATE order_counts
            SET approved = approved + IF(p_approved, 1, -1),
                rejected = rejected + IF(p_approved, -1, 1)
            WHERE station = p_station AND order_code = p_order;
        END IF;
    END IF;

    UPDATE operator_shift_scans SET scans = scans + 1
    WHERE station = p_station AND operator_code = p_operator AND shift_start = p_shift_start;
    IF ROW_COUNT() = 0 THEN
        -- The shift's first save here: count what is stored (this scan included),
        -- a plain read apart from the INSERT, which would lock what it read and
        -- wait for the operator's saves still open elsewhere. A concurrent first
        -- save of the same operator that inserts first has counted itself; then
        -- this adds one.
        SELECT COUNT(*) INTO v_stored FROM scans
        WHERE operator_code = p_operator AND created_at >= p_shift_start
          AND created_at < p_shift_end AND station = p_station;
        INSERT INTO operator_shift_scans (station, operator_code, shift_start, scans)
        VALUES (p_station, p_operator, p_shift_start, v_stored)
        ON DUPLICATE KEY UPDATE scans = scans + 1;
    END IF;

    SELECT v_scan, v_previous IS NOT NULL, d.name, c.approved, c.rejected,
           p.approved, p.defect_code, p.defect_name, o.scans
    FROM order_counts c
    JOIN defect_codes d ON d.code = p_defect
    JOIN operator_shift_scans o
      ON o.station = p_station AND o.operator_code = p_operator AND o.shift_start = p_shift_start
    LEFT JOIN scans p ON p.id = v_previous_scan
    WHERE c.station = p_station AND c.order_code = p_order;
    COMMIT;
END
