-- Sign-in throttling per (user, address) pair, and the signal that lets each
-- process trust a session it checked for up to a second.
--
-- login_attempts replaces login_throttle: sign-in attempts counted before the
-- password is checked, per pair, per user name and per address (quality/auth.py
-- decides the delays). A success takes its own attempt back.

DROP TABLE login_throttle;

CREATE TABLE login_attempts (
    scope ENUM('pair', 'user', 'address') NOT NULL,
    subject VARCHAR(200) NOT NULL,
    failures INT UNSIGNED NOT NULL,
    last_at DATETIME(6) NOT NULL,
    PRIMARY KEY (scope, subject),
    KEY ix_login_attempts_last (last_at)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

-- auth_version: one row, bumped by every change that can end or narrow a
-- session (sign-out, expiry moved earlier, a user changed or deleted, a role's
-- permissions changed). Each process's scan watcher reads it every 0.5 s and
-- drops the sessions it trusts when it moves. Triggers bump it, so no code
-- path (admin pages, CLI, a DBA's UPDATE) can forget to.
CREATE TABLE auth_version (
    id TINYINT UNSIGNED NOT NULL PRIMARY KEY,
    version BIGINT UNSIGNED NOT NULL
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

INSERT INTO auth_version (id, version) VALUES (1, 0);

CREATE TRIGGER sessions_revoke_on_delete AFTER DELETE ON sessions FOR EACH ROW
    UPDATE auth_version SET version = version + 1 WHERE id = 1;

-- Sliding a session later is not a revocation; moving its end earlier is.
CREATE TRIGGER sessions_revoke_on_shorten AFTER UPDATE ON sessions FOR EACH ROW
    UPDATE auth_version SET version = version + 1
    WHERE id = 1 AND (NEW.expires_at < OLD.expires_at OR NEW.user_id <> OLD.user_id);

CREATE TRIGGER users_revoke_on_update AFTER UPDATE ON users FOR EACH ROW
    UPDATE auth_version SET version = version + 1 WHERE id = 1;

CREATE TRIGGER users_revoke_on_delete AFTER DELETE ON users FOR EACH ROW
    UPDATE auth_version SET version = version + 1 WHERE id = 1;

CREATE TRIGGER role_permissions_revoke_on_insert AFTER INSERT ON role_permissions FOR EACH ROW
    UPDATE auth_version SET version = version + 1 WHERE id = 1;

CREATE TRIGGER role_permissions_revoke_on_update AFTER UPDATE ON role_permissions FOR EACH ROW
    UPDATE auth_version SET version = version + 1 WHERE id = 1;

CREATE TRIGGER role_permissions_revoke_on_delete AFTER DELETE ON role_permissions FOR EACH ROW
    UPDATE auth_version SET version = version + 1 WHERE id = 1;

CREATE TRIGGER roles_revoke_on_update AFTER UPDATE ON roles FOR EACH ROW
    UPDATE auth_version SET version = version + 1 WHERE id = 1;

-- session_user, now also bounded by an absolute age (p_started_after) and
-- returning the session's end and start, which tell a process how long it may
-- skip the check. The permissions come from a subquery, so nothing needs
-- grouping (valid under ONLY_FULL_GROUP_BY).
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
           s.expires_at, s.created_at
    FROM sessions s
    JOIN users u ON u.id = s.user_id AND u.active
    JOIN roles r ON r.id = u.role_id
    WHERE s.id = p_session AND s.expires_at > p_now AND s.created_at > p_started_after;
    COMMIT;
END //

DELIMITER ;
