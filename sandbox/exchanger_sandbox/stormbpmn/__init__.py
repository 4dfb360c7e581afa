"""A fake StormBPMN: the public API, the old internal endpoints and the real rate limit."""
