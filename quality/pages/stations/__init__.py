"""The scan stations /scan and /fgscan (quality/stations.py defines them):
the form and its submit, the live table's stream, and the two small reads the
page makes while a scan is typed."""
