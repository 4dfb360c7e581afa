"""A fake 1C:Enterprise infobase behind the standard OData interface: ``python -m exchanger_sandbox onec``."""
