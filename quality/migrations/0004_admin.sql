-- What the admin pages (issue 8) need from the schema:
--
-- * audit_log: the address a change came from, and indexes for its filters,
--   each ending in id so the page's keyset pagination (id < last seen, newest
--   first) walks an index. Triggers refuse UPDATE and DELETE, so nothing that
--   connects as the app's user can rewrite history, whatever the code does.
-- * users.must_change_password: set by an admin's password reset; the user
--   chooses a new password at the next sign-in before getting a session.
-- * defect_codes.category: an optional grouping shown in the catalogue.
-- * scans.defect_name: the defect's name when the scan was saved, so renaming a
--   code later does not rewrite what old scans said. A trigger fills it from the
--   catalogue on insert (record_scan, re-created in 0003, stays as it is).

ALTER TABLE audit_log
    ADD COLUMN address VARCHAR(45) NOT NULL DEFAULT '' AFTER actor,
    ADD KEY ix_audit_actor (actor, id),
    ADD KEY ix_audit_action (action, id);

CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log FOR EACH ROW
    SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = 'the audit log is read-only', MYSQL_ERRNO = 30002;

CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log FOR EACH ROW
    SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = 'the audit log is read-only', MYSQL_ERRNO = 30002;

ALTER TABLE users
    ADD COLUMN must_change_password BOOLEAN NOT NULL DEFAULT FALSE;

ALTER TABLE defect_codes
    ADD COLUMN category VARCHAR(60) NOT NULL DEFAULT '';

ALTER TABLE scans
    ADD COLUMN defect_name VARCHAR(100) NOT NULL DEFAULT '';

UPDATE scans s JOIN defect_codes d ON d.code = s.defect_code SET s.defect_name = d.name;

CREATE TRIGGER scans_defect_name BEFORE INSERT ON scans FOR EACH ROW
    SET NEW.defect_name = COALESCE((SELECT d.name FROM defect_codes d WHERE d.code = NEW.defect_code), '');
