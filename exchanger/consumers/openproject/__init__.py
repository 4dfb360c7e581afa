"""OpenProject (API v3): the system ``openproject`` of the routing table."""
