"""Taking over from Exchanger.py: inventory, old formats → contracts, adoption, reconciliation."""
