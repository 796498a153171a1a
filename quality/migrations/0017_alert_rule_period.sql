-- A p-chart rule's points (issue 20): per shift, as every rule so far, or per
-- production day (quality/shifts.py: the day a shift starts on, its night
-- shift included). Other kinds of rule keep the default; it means nothing to them.

ALTER TABLE alert_rules
    ADD COLUMN period ENUM('shift', 'day') NOT NULL DEFAULT 'shift' AFTER pieces;
