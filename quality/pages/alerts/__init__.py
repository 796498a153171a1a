"""The quality alerts' pages: /alerts (history, acknowledging, the live
banners' streams) and /admin/alerts (the rules)."""
