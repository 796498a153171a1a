-- The whole schema SPEC.md needs: people and rights, sessions and login
-- throttling, the defect catalogue, scans with their per-piece and per-order
-- state, and the audit log. Times are UTC (sessions run with time_zone +00:00).

CREATE TABLE roles (
    id SMALLINT UNSIGNED AUTO_INCREMENT PRIMARY KEY,
    name VARCHAR(32) NOT NULL,
    description VARCHAR(200) NOT NULL DEFAULT '',
    UNIQUE KEY uq_roles_name (name)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

CREATE TABLE permissions (
    name VARCHAR(40) NOT NULL PRIMARY KEY,
    description VARCHAR(200) NOT NULL
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

CREATE TABLE role_permissions (
    role_id SMALLINT UNSIGNED NOT NULL,
    permission VARCHAR(40) NOT NULL,
    PRIMARY KEY (role_id, permission),
    CONSTRAINT fk_role_permissions_role FOREIGN KEY (role_id) REFERENCES roles (id) ON DELETE CASCADE,
    CONSTRAINT fk_role_permissions_permission FOREIGN KEY (permission)
        REFERENCES permissions (name) ON DELETE CASCADE
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

CREATE TABLE users (
    id INT UNSIGNED AUTO_INCREMENT PRIMARY KEY,
    username VARCHAR(64) NOT NULL,
    full_name VARCHAR(120) NOT NULL DEFAULT '',
    password_hash VARCHAR(255) NOT NULL,
    role_id SMALLINT UNSIGNED NOT NULL,
    active BOOLEAN NOT NULL DEFAULT TRUE,
    created_at DATETIME(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
    password_changed_at DATETIME(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
    UNIQUE KEY uq_users_username (username),
    CONSTRAINT fk_users_role FOREIGN KEY (role_id) REFERENCES roles (id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

-- A session row per login; the cookie carries a random token whose SHA-256 is the id.
CREATE TABLE sessions (
    id BINARY(32) NOT NULL PRIMARY KEY,
    user_id INT UNSIGNED NOT NULL,
    created_at DATETIME(6) NOT NULL,
    expires_at DATETIME(6) NOT NULL,
    address VARCHAR(45) NOT NULL DEFAULT '',
    user_agent VARCHAR(200) NOT NULL DEFAULT '',
    KEY ix_sessions_user (user_id),
    KEY ix_sessions_expires (expires_at),
    CONSTRAINT fk_sessions_user FOREIGN KEY (user_id) REFERENCES users (id) ON DELETE CASCADE
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

-- Failed logins per user name and per client address, shared by all processes.
CREATE TABLE login_throttle (
    scope ENUM('user', 'address') NOT NULL,
    subject VARCHAR(64) NOT NULL,
    failures INT UNSIGNED NOT NULL,
    window_started_at DATETIME(6) NOT NULL,
    PRIMARY KEY (scope, subject)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

CREATE TABLE defect_codes (
    code CHAR(3) NOT NULL PRIMARY KEY,
    name VARCHAR(100) NOT NULL,
    active BOOLEAN NOT NULL DEFAULT TRUE
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

CREATE TABLE scans (
    id BIGINT UNSIGNED AUTO_INCREMENT PRIMARY KEY,
    station ENUM('quality', 'fg') NOT NULL,
    submission_id BINARY(16) NOT NULL,
    operator_code VARCHAR(32) NOT NULL,
    piece_code VARCHAR(64) NOT NULL,
    order_code VARCHAR(32) NOT NULL,
    checker1_code VARCHAR(32) NOT NULL,
    checker2_code VARCHAR(32) NOT NULL,
    defect_code CHAR(3) NOT NULL,
    approved BOOLEAN NOT NULL,
    is_rescan BOOLEAN NOT NULL DEFAULT FALSE,
    created_at DATETIME(6) NOT NULL,
    created_by INT UNSIGNED NOT NULL,
    UNIQUE KEY uq_scans_submission (submission_id),
    KEY ix_scans_station (station),
    KEY ix_scans_station_time (station, created_at),
    KEY ix_scans_order (order_code, station),
    KEY ix_scans_operator (operator_code, created_at),
    KEY ix_scans_piece (piece_code, station),
    KEY ix_scans_defect (defect_code, created_at),
    CONSTRAINT fk_scans_user FOREIGN KEY (created_by) REFERENCES users (id),
    CONSTRAINT fk_scans_defect FOREIGN KEY (defect_code) REFERENCES defect_codes (code)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

-- Each piece's latest verdict per station: what the per-order counts count.
CREATE TABLE piece_verdicts (
    station ENUM('quality', 'fg') NOT NULL,
    piece_code VARCHAR(64) NOT NULL,
    order_code VARCHAR(32) NOT NULL,
    approved BOOLEAN NOT NULL,
    last_scan_id BIGINT UNSIGNED NOT NULL,
    PRIMARY KEY (station, piece_code)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

-- Pieces approved/rejected per order, kept current in each scan's transaction.
CREATE TABLE order_counts (
    station ENUM('quality', 'fg') NOT NULL,
    order_code VARCHAR(32) NOT NULL,
    approved INT UNSIGNED NOT NULL DEFAULT 0,
    rejected INT UNSIGNED NOT NULL DEFAULT 0,
    PRIMARY KEY (station, order_code)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

CREATE TABLE audit_log (
    id BIGINT UNSIGNED AUTO_INCREMENT PRIMARY KEY,
    at DATETIME(6) NOT NULL,
    actor_id INT UNSIGNED NULL,
    actor VARCHAR(64) NOT NULL,
    action VARCHAR(64) NOT NULL,
    target VARCHAR(128) NOT NULL,
    before_value TEXT NULL,
    after_value TEXT NULL,
    KEY ix_audit_at (at),
    KEY ix_audit_target (target)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

INSERT INTO permissions (name, description) VALUES
    ('scan.quality', 'Use the quality scan station (/scan)'),
    ('scan.fg', 'Use the finished-goods scan station (/fgscan)'),
    ('scans.view', 'View scan lists'),
    ('scans.export', 'Export scan lists as CSV and XLSX'),
    ('reports.view', 'View reports'),
    ('admin.users', 'Manage users'),
    ('admin.roles', 'Manage roles and their permissions'),
    ('admin.defects', 'Manage the defect code catalogue'),
    ('admin.audit', 'View the audit log');

INSERT INTO roles (name, description) VALUES
    ('admin', 'Everything'),
    ('supervisor', 'Scan pages, lists, reports and exports'),
    ('operator', 'Scan pages');

INSERT INTO role_permissions (role_id, permission)
    SELECT r.id, p.name FROM roles r CROSS JOIN permissions p WHERE r.name = 'admin';

INSERT INTO role_permissions (role_id, permission)
    SELECT r.id, p.name FROM roles r CROSS JOIN permissions p
    WHERE r.name = 'supervisor'
      AND p.name IN ('scan.quality', 'scan.fg', 'scans.view', 'scans.export', 'reports.view');

INSERT INTO role_permissions (role_id, permission)
    SELECT r.id, p.name FROM roles r CROSS JOIN permissions p
    WHERE r.name = 'operator' AND p.name IN ('scan.quality', 'scan.fg');

INSERT INTO defect_codes (code, name) VALUES
    ('000', 'Approved'),
    ('101', 'Scratch'),
    ('102', 'Dent'),
    ('103', 'Dimension out of tolerance'),
    ('104', 'Missing component'),
    ('105', 'Surface contamination'),
    ('201', 'Wrong or missing label'),
    ('301', 'Assembly error');
