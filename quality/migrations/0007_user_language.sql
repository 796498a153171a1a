-- Each user's choice of UI language (a code from quality/i18n.py LANGUAGES);
-- NULL: the plant's default, QUALITY_LANGUAGE.
ALTER TABLE users
    ADD COLUMN language VARCHAR(8) CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci NULL DEFAULT NULL;
