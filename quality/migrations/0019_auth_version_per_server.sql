-- auth_version (0006): a row per database server rather than one row. Every
-- sign-out, user change and role-permission change bumps the counter through
-- a trigger; on a Galera cluster, two nodes bumping one row at once is a
-- certification conflict, and one of the two transactions is rolled back
-- (1213): 60 simultaneous sign-outs through two nodes rolled back about one
-- in two, some four times in a row, which the app answers with 503. Each
-- server now bumps a row of its own, named by its host and port, so bumps
-- through different nodes never touch the same row; on one server they
-- still wait for each other on one row, as before. The counter a process
-- compares is the sum of the rows (quality/session_cache.py `REVOCATIONS`):
-- rows are only ever added and their versions only grow, so any bump moves
-- the sum. The row that was there keeps its count, under the name ''.

ALTER TABLE auth_version
    ADD COLUMN server VARCHAR(300) CHARACTER SET ascii COLLATE ascii_bin NOT NULL DEFAULT '' FIRST,
    DROP PRIMARY KEY,
    DROP COLUMN id,
    ADD PRIMARY KEY (server);

DROP TRIGGER sessions_revoke_on_delete;

CREATE TRIGGER sessions_revoke_on_delete AFTER DELETE ON sessions FOR EACH ROW
    INSERT INTO auth_version (server, version) VALUES (CONCAT(@@hostname, ':', @@port), 1)
    ON DUPLICATE KEY UPDATE version = version + 1;

-- Sliding a session later is not a revocation; moving its end earlier is.
DROP TRIGGER sessions_revoke_on_shorten;

CREATE TRIGGER sessions_revoke_on_shorten AFTER UPDATE ON sessions FOR EACH ROW
    INSERT INTO auth_version (server, version)
    SELECT CONCAT(@@hostname, ':', @@port), 1 FROM DUAL
    WHERE NEW.expires_at < OLD.expires_at OR NEW.user_id <> OLD.user_id
    ON DUPLICATE KEY UPDATE version = version + 1;

DROP TRIGGER users_revoke_on_update;

CREATE TRIGGER users_revoke_on_update AFTER UPDATE ON users FOR EACH ROW
    INSERT INTO auth_version (server, version) VALUES (CONCAT(@@hostname, ':', @@port), 1)
    ON DUPLICATE KEY UPDATE version = version + 1;

DROP TRIGGER users_revoke_on_delete;

CREATE TRIGGER users_revoke_on_delete AFTER DELETE ON users FOR EACH ROW
    INSERT INTO auth_version (server, version) VALUES (CONCAT(@@hostname, ':', @@port), 1)
    ON DUPLICATE KEY UPDATE version = version + 1;

DROP TRIGGER role_permissions_revoke_on_insert;

CREATE TRIGGER role_permissions_revoke_on_insert AFTER INSERT ON role_permissions FOR EACH ROW
    INSERT INTO auth_version (server, version) VALUES (CONCAT(@@hostname, ':', @@port), 1)
    ON DUPLICATE KEY UPDATE version = version + 1;

DROP TRIGGER role_permissions_revoke_on_update;

CREATE TRIGGER role_permissions_revoke_on_update AFTER UPDATE ON role_permissions FOR EACH ROW
    INSERT INTO auth_version (server, version) VALUES (CONCAT(@@hostname, ':', @@port), 1)
    ON DUPLICATE KEY UPDATE version = version + 1;

DROP TRIGGER role_permissions_revoke_on_delete;

CREATE TRIGGER role_permissions_revoke_on_delete AFTER DELETE ON role_permissions FOR EACH ROW
    INSERT INTO auth_version (server, version) VALUES (CONCAT(@@hostname, ':', @@port), 1)
    ON DUPLICATE KEY UPDATE version = version + 1;

DROP TRIGGER roles_revoke_on_update;

CREATE TRIGGER roles_revoke_on_update AFTER UPDATE ON roles FOR EACH ROW
    INSERT INTO auth_version (server, version) VALUES (CONCAT(@@hostname, ':', @@port), 1)
    ON DUPLICATE KEY UPDATE version = version + 1;
