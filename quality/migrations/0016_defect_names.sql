-- Defect names per language (issue 21): the catalogue's `name` is the English
-- name; `name_ro` the Romanian one, empty where none is given (then the
-- English one is shown: quality/defects.py's `name_in`).
--
-- Scans keep the names their code had when they were saved, in every
-- language: `scans.defect_name_ro` beside `defect_name` (0004), both filled
-- from the catalogue on insert by the trigger, re-created here. Scans saved
-- before this migration get the Romanian name where their stored name is
-- still the code's English name (they were saved under that name); the
-- others keep the English name they were saved with.

ALTER TABLE defect_codes
    ADD COLUMN name_ro VARCHAR(100) NOT NULL DEFAULT '' AFTER name;

UPDATE defect_codes d
JOIN (SELECT '000' AS code, 'Aprobat' AS name_ro
      UNION ALL SELECT '101', 'Zgârietură'
      UNION ALL SELECT '102', 'Lovitură'
      UNION ALL SELECT '103', 'Dimensiune în afara toleranței'
      UNION ALL SELECT '104', 'Componentă lipsă'
      UNION ALL SELECT '105', 'Suprafață contaminată'
      UNION ALL SELECT '201', 'Etichetă greșită sau lipsă'
      UNION ALL SELECT '301', 'Eroare de asamblare') ro ON ro.code = d.code
SET d.name_ro = ro.name_ro;

ALTER TABLE scans
    ADD COLUMN defect_name_ro VARCHAR(100) NOT NULL DEFAULT '' AFTER defect_name;

UPDATE scans s JOIN defect_codes d ON d.code = s.defect_code
SET s.defect_name_ro = d.name_ro
WHERE s.defect_name = d.name AND d.name_ro <> '';

DROP TRIGGER scans_defect_name;

CREATE TRIGGER scans_defect_name BEFORE INSERT ON scans FOR EACH ROW
    SET NEW.defect_name = COALESCE((SELECT d.name FROM defect_codes d WHERE d.code = NEW.defect_code), ''),
        NEW.defect_name_ro = COALESCE((SELECT d.name_ro FROM defect_codes d WHERE d.code = NEW.defect_code), '');
