-- Each user's choice of UI language (a code from quality/i18n.py LANGUAGES);
-- no row: the plant's default, QUALITY_LANGUAGE. A table of its own rather than
-- a column of `users`: a plant's DBA may grant CREATE but not ALTER
-- (tests/test_server_settings.py migrates as such a user). session_user returns
-- it as a sixth column, so the language costs no statement of its own per request.

CREATE TABLE user_preferences (
    user_id INT UNSIGNED NOT NULL PRIMARY KEY,
    language VARCHAR(8) NULL,
    CONSTRAINT fk_user_preferences_user FOREIGN KEY (user_id) REFERENCES users (id) ON DELETE CASCADE
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

DROP PROCEDURE IF EXISTS session_user;

DELIMITER //

-- As in 0003, plus the user's language (NULL: none chosen).
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
            FROM role_permissions rp WHERE rp.role_id = r.id),
           up.language
    FROM sessions s
    JOIN users u ON u.id = s.user_id AND u.active
    JOIN roles r ON r.id = u.role_id
    LEFT JOIN user_preferences up ON up.user_id = u.id
    WHERE s.id = p_session AND s.expires_at > p_now;
    COMMIT;
END //

DELIMITER ;
