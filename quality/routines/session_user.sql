-- session_user: the session check in one round trip (quality/http/sessions.py
-- calls it). Slides the session's expiry when it is due, within its cap, and
-- returns its user, role, permissions, expiry, start and language; nothing for
-- a session that has ended. Ends with COMMIT.
--
-- The one current copy: `quality migrate` re-creates it when this file
-- changes (quality/procedures.py). Migrations 0002, 0003, 0006 and 0007 hold
-- the versions plants have run.

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
END
