"""Quality alerts: rules (rules.py), evaluated as scans are saved (engine.py),
the open alerts every process shows live (board.py), and their notifications,
sent from an outbox (outbox.py)."""
