"""The HTTPS client (``mutls get``), the handshake doctor, and client certificates for other
HTTP libraries.

For httpx, urllib or aiohttp, an ``ssl.SSLContext`` that presents the certificate::

    from mutls.client import ssl_context
    ctx = ssl_context("poupou.p12", "s3kr3t", cafile="root.cer")
    httpx.get("https://localhost:4433/cctest.aspx", verify=ctx)

For requests, an adapter: ``session.mount("https://", requests_adapter("poupou.p12", "s3kr3t"))``.
"""

from mutls.client.connection import ClientConfig
from mutls.client.doctor import DoctorReport, run_doctor
from mutls.client.errors import ClientTLSError, ConnectError
from mutls.client.fetch import Exchange, fetch
from mutls.client.http import Request, Response
from mutls.client.server_trust import ServerTrust
from mutls.client.stdlib_ssl import requests_adapter, ssl_context

__all__ = [
    "ClientConfig",
    "ClientTLSError",
    "ConnectError",
    "DoctorReport",
    "Exchange",
    "Request",
    "Response",
    "ServerTrust",
    "fetch",
    "requests_adapter",
    "run_doctor",
    "ssl_context",
]
