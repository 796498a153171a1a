-- Each user's choice of UI language (a code from quality/i18n.py LANGUAGES);
-- NULL: the plant's default, QUALITY_LANGUAGE. Changing it is an UPDATE of
-- users, so 0006's trigger moves auth_version and every process drops the
-- session it trusts: the new language shows everywhere within a second.

ALTER TABLE users
    ADD COLUMN language VARCHAR(8) CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci NULL DEFAULT NULL;

-- session_user as in 0006, also returning the user's language (last column),
-- so the language costs no statement of its own per request.
DROP PROCEDURE IF EXISTS session_user;

DELIMITER //

CREATE PROCEDURE session_user(
    IN p_session BINARY(32),
    IN p_now DATETIME(6),
    IN p_renewed DATETIME(6),
    IN p_extend_below DATETIME(6),
    IN p_started_after DATETIME(6)
)
MODIFIES SQL DATA
BEGIN
    UPDATE sessions SET expires_at = p_renewed
    WHERE id = p_session AND expires_at > p_now AND expires_at < p_extend_below
      AND created_at > p_started_after;

    SELECT u.id, u.username, u.full_name, r.name,
           (SELECT GROUP_CONCAT(rp.permission SEPARATOR ',')
            FROM role_permissions rp WHERE rp.role_id = r.id),
           s.expires_at, s.created_at, u.language
    FROM sessions s
    JOIN users u ON u.id = s.user_id AND u.active
    JOIN roles r ON r.id = u.role_id
    WHERE s.id = p_session AND s.expires_at > p_now AND s.created_at > p_started_after;
    COMMIT;
END //

DELIMITER ;
