"""camunda-worker: fetch tasks and publish them (fetcher), apply results to Camunda (responses)."""
