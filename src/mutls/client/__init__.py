"""The HTTPS client (``mutls get``) and the handshake doctor."""
