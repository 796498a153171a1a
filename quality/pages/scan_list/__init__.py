"""The scan list /scans: keyset pages and totals (queries.py), the page, its
live first page and totals (views.py), the CSV and XLSX exports (export.py,
xlsx.py, zipstream.py). Its filter is the domain's (quality/scan_filter.py)."""
