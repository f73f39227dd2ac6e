"""asyncio glue: listeners, the per-connection protocol, workers, signals.

``ServerConfig`` holds every setting; ``run(config)`` serves it in this process;
``serve_in_thread(config)`` runs it on a thread (tests, embedding).
"""

from mutls.server.config import ServerConfig, Timeouts
from mutls.server.server import Server, run
from mutls.server.thread import RunningServer, serve_in_thread

__all__ = ["RunningServer", "Server", "ServerConfig", "Timeouts", "run", "serve_in_thread"]
