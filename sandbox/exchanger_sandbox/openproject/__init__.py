"""A fake OpenProject (API v3, HAL+JSON) for tests and the sandbox: ``python -m exchanger_sandbox openproject``."""
