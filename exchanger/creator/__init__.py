"""task-creator: consumers for the system queues, handlers, trackers, retries and parking."""
