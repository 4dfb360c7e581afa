"""A fake Bitrix24 portal: the task REST methods, webhook auth, envelopes and the leaky-bucket limit."""
