-- The two procedures of 0002 again, now independent of the server's defaults
-- and the DBA's sql_mode (issues 6 and 11):
--
-- * Procedure parameters and variables take the character set and collation
--   of the database's default, not of the tables they are compared with; on a
--   database created with the server's defaults (utf8mb4_general_ci, latin1,
--   uca1400) every scan failed with "Illegal mix of collations". Each text
--   parameter now declares the schema's own.
-- * A routine keeps the sql_mode it was created under. quality/db.py now sets
--   the app's sql_mode in every session, migrations included, so these are
--   created under it; and their SQL is valid under ONLY_FULL_GROUP_BY and
--   ANSI_QUOTES as well (session_user grouped by a key MariaDB cannot see the
--   other columns depend on).
-- * record_scan takes the verdict from the caller (p_approved): which defect
--   code means "approved" is decided in Python only (quality/scans/form.py).
--
-- Both still end with COMMIT, and quality/db.py then sends no COMMIT of its own
-- (see 0002). DROP + CREATE rather than CREATE OR REPLACE, which MySQL lacks.

DROP PROCEDURE IF EXISTS record_scan;

DELIMITER //

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
    IN p_at DATETIME(6)
)
MODIFIES SQL DATA
BEGIN
    DECLARE v_previous BOOLEAN DEFAULT NULL;
    DECLARE v_scan BIGINT UNSIGNED;
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

    SELECT approved INTO v_previous FROM piece_verdicts
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

    SELECT v_scan, v_previous IS NOT NULL, d.name, c.approved, c.rejected
    FROM order_counts c JOIN defect_codes d ON d.code = p_defect
    WHERE c.station = p_station AND c.order_code = p_order;
    COMMIT;
END //

DELIMITER ;

DROP PROCEDURE IF EXISTS session_user;

DELIMITER //

-- The permissions come from a subquery, so nothing needs grouping.
CREATE PROCEDURE session_user(
    IN p_session BINARY(32),
    IN p_now DATETIME(6),
    IN p_renewed DATETIME(6),
    IN p_extend_below DATETIME(6)
)
MODIFIES SQL DATA
BEGIN
    UPDATE sessions SET expires_at = p_renewed
    WHERE id = p_session AND expires_at > p_now AND expires_at < p_extend_below;

    SELECT u.id, u.username, u.full_name, r.name,
           (SELECT GROUP_CONCAT(rp.permission SEPARATOR ',')
            FROM role_permissions rp WHERE rp.role_id = r.id)
    FROM sessions s
    JOIN users u ON u.id = s.user_id AND u.active
    JOIN roles r ON r.id = u.role_id
    WHERE s.id = p_session AND s.expires_at > p_now;
    COMMIT;
END //

DELIMITER ;
