-- Each user's e-mail address (issue 20), NULL when none is known: an alert
-- rule's recipient who is a user gets the e-mails in that user's language
-- (quality/alerts/outbox.py). Two accounts cannot share an address; the
-- column's collation is case-insensitive, so neither can Ana@x and ana@x, and
-- the outbox matches a recipient typed in any case. Changing it is an UPDATE
-- of users, which moves auth_version (0006) like any other change of a user.

ALTER TABLE users
    ADD COLUMN email VARCHAR(254) CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci NULL DEFAULT NULL
        AFTER full_name,
    ADD UNIQUE KEY uq_users_email (email);
