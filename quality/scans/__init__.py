"""Scans, the domain's records: saving each exactly once and reading them back
(`store`), and each process's live tables of every station's latest scans
(`feed`). No page lives here: /scan and /fgscan are quality/pages/stations/,
the scan list /scans is quality/pages/scan_list/."""
