"""The default system: tasks whose topic no system claims (they reach ``default.queue``)."""
