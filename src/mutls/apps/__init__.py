"""WSGI and ASGI adapters, and the built-in pages (the article's test page)."""
