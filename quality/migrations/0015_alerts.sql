-- Quality alerts (quality/alerts/): rules, the alerts they fire, and the
-- outbox of their notifications.
--
-- A rule fires once per breach: `breached` is set by the one transaction that
-- fires it (`UPDATE ... WHERE NOT breached`), which also counts the breach in
-- `breaches` and inserts the alert keyed by (rule_id, breach), so however
-- many processes see the same breach, one alert is written; clearing the
-- condition sets `breached` back (re-armed). Rules are never deleted, only
-- removed (`removed_at`), so their alerts keep naming them.

INSERT INTO permissions (name, description) VALUES
    ('alerts.view', 'See and acknowledge quality alerts'),
    ('admin.alerts', 'Manage alert rules');

INSERT INTO role_permissions (role_id, permission)
    SELECT r.id, p.name FROM roles r CROSS JOIN permissions p
    WHERE r.name = 'admin' AND p.name IN ('alerts.view', 'admin.alerts');

INSERT INTO role_permissions (role_id, permission)
    SELECT r.id, p.name FROM roles r CROSS JOIN permissions p
    WHERE r.name = 'supervisor' AND p.name = 'alerts.view';

CREATE TABLE alert_rules (
    id INT UNSIGNED AUTO_INCREMENT PRIMARY KEY,
    kind ENUM('rejection_rate', 'repeated_defect', 'p_chart') NOT NULL,
    station ENUM('quality', 'fg') NULL,
    order_code VARCHAR(32) NULL,
    defect_code CHAR(3) NULL,
    threshold DECIMAL(5, 2) NULL,  -- rejection_rate: the highest share (%) that is not a breach
    pieces SMALLINT UNSIGNED NOT NULL,  -- the last N scans, or K in a row; 0 for a p-chart rule
    at_station BOOLEAN NOT NULL DEFAULT FALSE,
    recipients VARCHAR(500) NOT NULL DEFAULT '',
    mail_language VARCHAR(8) NOT NULL DEFAULT 'en',
    breaches INT UNSIGNED NOT NULL DEFAULT 0,
    breached BOOLEAN NOT NULL DEFAULT FALSE,
    created_at DATETIME(3) NOT NULL,
    created_by VARCHAR(64) NOT NULL,
    removed_at DATETIME(3) NULL,
    CONSTRAINT fk_alert_rules_defect FOREIGN KEY (defect_code) REFERENCES defect_codes (code)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

CREATE TABLE alerts (
    id BIGINT UNSIGNED AUTO_INCREMENT PRIMARY KEY,
    rule_id INT UNSIGNED NOT NULL,
    breach INT UNSIGNED NOT NULL,
    fired_at DATETIME(3) NOT NULL,
    station ENUM('quality', 'fg') NOT NULL,
    order_code VARCHAR(32) NOT NULL,
    value DECIMAL(6, 2) NOT NULL,
    threshold DECIMAL(6, 2) NOT NULL,
    scan_ids VARCHAR(2000) NOT NULL,  -- the scans that caused it, comma-separated
    acknowledged_by VARCHAR(64) NULL,
    acknowledged_at DATETIME(3) NULL,
    comment VARCHAR(500) NULL,
    UNIQUE KEY uq_alerts_breach (rule_id, breach),
    KEY ix_alerts_open (acknowledged_at, id),
    KEY ix_alerts_fired (fired_at),
    CONSTRAINT fk_alerts_rule FOREIGN KEY (rule_id) REFERENCES alert_rules (id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

CREATE TABLE alert_outbox (
    id BIGINT UNSIGNED AUTO_INCREMENT PRIMARY KEY,
    alert_id BIGINT UNSIGNED NOT NULL,
    channel ENUM('webhook', 'email') NOT NULL,
    recipient VARCHAR(500) NOT NULL DEFAULT '',
    idempotency_key CHAR(32) NOT NULL,
    attempts SMALLINT UNSIGNED NOT NULL DEFAULT 0,
    next_attempt_at DATETIME(3) NOT NULL,
    sent_at DATETIME(3) NULL,
    failed_at DATETIME(3) NULL,
    last_error VARCHAR(255) NULL,
    UNIQUE KEY uq_alert_outbox_key (idempotency_key),
    KEY ix_alert_outbox_due (sent_at, failed_at, next_attempt_at),
    CONSTRAINT fk_alert_outbox_alert FOREIGN KEY (alert_id) REFERENCES alerts (id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;
