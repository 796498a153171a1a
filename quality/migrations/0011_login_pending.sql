-- Sign-in attempts still being checked (quality/throttle.py). Every attempt is
-- counted in `failures` before its password is checked; `pending` says how many
-- of those are still being checked, so that an attempt held back only by them
-- waits until they are settled instead of being refused (a right password is
-- taken back, a wrong one stays counted).

ALTER TABLE login_attempts
    ADD COLUMN pending INT UNSIGNED NOT NULL DEFAULT 0 AFTER failures;
