"""asyncio glue: listeners, the per-connection protocol, workers, signals."""
