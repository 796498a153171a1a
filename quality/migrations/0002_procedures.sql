-- The two things every scan does, each in one round trip: check the session,
-- save the scan. Each procedure ends with COMMIT, and quality/db.py sends no
-- COMMIT of its own when the server reports no transaction open.
--
-- record_scan. Saving a scan: the scan row, the piece's latest verdict and
-- its order's approved/rejected piece counts change together, and commit.
-- Returns the saved scan's id, whether it re-scans the piece, the
-- defect's name and the order's counts after it.
--
-- The scan row is inserted first so that a repeated submission id fails at once
-- on uq_scans_submission, before any other row is locked. Connections run at
-- READ COMMITTED (quality/db.py), so the piece lookup takes no gap lock; two
-- first scans of the same piece at the same instant collide on the piece's
-- primary key instead, and the caller runs the loser again as a re-scan.

DELIMITER //

CREATE PROCEDURE record_scan(
    IN p_station VARCHAR(8),
    IN p_submission BINARY(16),
    IN p_operator VARCHAR(32),
    IN p_piece VARCHAR(64),
    IN p_order VARCHAR(32),
    IN p_checker1 VARCHAR(32),
    IN p_checker2 VARCHAR(32),
    IN p_defect CHAR(3),
    IN p_user INT UNSIGNED,
    IN p_at DATETIME(6)
)
MODIFIES SQL DATA
BEGIN
    DECLARE v_approved BOOLEAN DEFAULT (p_defect = '000');
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
            p_checker1, p_checker2, p_defect, v_approved, FALSE, p_at, p_user);
    SET v_scan = LAST_INSERT_ID();

    SELECT approved INTO v_previous FROM piece_verdicts
    WHERE station = p_station AND piece_code = p_piece FOR UPDATE;

    IF v_previous IS NULL THEN
        INSERT INTO piece_verdicts (station, piece_code, order_code, approved, last_scan_id)
        VALUES (p_station, p_piece, p_order, v_approved, v_scan);
        INSERT INTO order_counts (station, order_code, approved, rejected)
        VALUES (p_station, p_order, v_approved, NOT v_approved)
        ON DUPLICATE KEY UPDATE approved = approved + VALUES(approved),
                                rejected = rejected + VALUES(rejected);
    ELSE
        UPDATE scans SET is_rescan = TRUE WHERE id = v_scan;
        UPDATE piece_verdicts SET approved = v_approved, last_scan_id = v_scan
        WHERE station = p_station AND piece_code = p_piece;
        IF v_previous <> v_approved THEN
            UPDATE order_counts
            SET approved = approved + IF(v_approved, 1, -1),
                rejected = rejected + IF(v_approved, -1, 1)
            WHERE station = p_station AND order_code = p_order;
        END IF;
    END IF;

    SELECT v_scan, v_previous IS NOT NULL, d.name, c.approved, c.rejected
    FROM order_counts c JOIN defect_codes d ON d.code = p_defect
    WHERE c.station = p_station AND c.order_code = p_order;
    COMMIT;
END //

-- session_user: the signed-in user behind a live session, with their role and
-- permissions as they are now; a session is extended (slid) to p_renewed when
-- it would end before p_extend_below, so most requests write nothing.
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
           GROUP_CONCAT(rp.permission SEPARATOR ',')
    FROM sessions s
    JOIN users u ON u.id = s.user_id AND u.active
    JOIN roles r ON r.id = u.role_id
    LEFT JOIN role_permissions rp ON rp.role_id = r.id
    WHERE s.id = p_session AND s.expires_at > p_now
    GROUP BY s.id;
    COMMIT;
END //

DELIMITER ;
