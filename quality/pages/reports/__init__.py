"""/reports: figures per day and shift, order, operator and defect (report.py),
the charts (charts.py), the page (views.py)."""
