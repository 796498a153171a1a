"""The supervisors' scan lists (/scans): filters, keyset pages, totals, the live
first page and the exports."""
