"""Quality-scan web app for factory floors."""
