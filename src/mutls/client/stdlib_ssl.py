"""Client certificates for other HTTP libraries: an ``ssl.SSLContext`` and a ``requests`` adapter.

The stdlib ``ssl`` module loads a certificate and key only from a file
(``SSLContext.load_cert_chain``). To keep a PKCS#12's key off the disk in the clear, the
identity is re-encrypted under a fresh random password and handed over through an anonymous
in-memory file (Linux ``memfd_create``); where that does not exist, through a 0600 file in a
private temporary directory, removed at once. Either way only ciphertext ever exists outside
the process, and the random password dies with the call.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import ssl
import tempfile
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from mutls.client.connection import refused_identity
from mutls.client.keylog import KeyLog, keylog_path
from mutls.client.server_trust import ServerTrust
from mutls.pki.certs import pem
from mutls.pki.identity import Identity

PathLike = str | os.PathLike[str]


def load_identity(ctx: ssl.SSLContext, identity: Identity) -> None:
    """Load ``identity`` (certificate, key, intermediates) into a stdlib context."""
    secret = secrets.token_urlsafe(32)
    issuers = [c for c in identity.chain if c.subject != c.issuer]
    data = identity.key_pem(secret) + pem([identity.certificate, *issuers])
    with _transient_file(data) as path:
        try:
            ctx.load_cert_chain(path, password=secret)
        except ssl.SSLError as exc:
            raise refused_identity(identity, exc.reason or str(exc)) from None


@contextlib.contextmanager
def _transient_file(data: bytes) -> Iterator[str]:
    """A path that reads as ``data`` for the duration of the block, then is gone."""
    memfd_create = getattr(os, "memfd_create", None)
    if memfd_create is not None and Path("/proc/self/fd").is_dir():
        fd = memfd_create("mutls-client-identity", getattr(os, "MFD_CLOEXEC", 0))
        try:
            os.write(fd, data)
            yield f"/proc/self/fd/{fd}"
        finally:
            os.close(fd)
        return
    with tempfile.TemporaryDirectory(prefix="mutls-") as directory:  # 0700
        path = os.path.join(directory, "identity.pem")
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            os.write(fd, data)
        finally:
            os.close(fd)
        try:
            yield path
        finally:
            os.unlink(path)


def ssl_context(
    cert: PathLike | Identity | None = None,
    password: str | None = None,
    *,
    key: PathLike | None = None,
    cafile: PathLike | None = None,
    insecure: bool = False,
    keylog: PathLike | None = None,
) -> ssl.SSLContext:
    """An ``ssl.SSLContext`` that presents a client certificate, for httpx, urllib, aiohttp.

    ``cert`` is a P12, a PEM holding certificate and key, or a PEM/DER certificate with its
    ``key`` file (or an :class:`~mutls.pki.Identity`); ``password`` opens it. The server is
    checked against ``cafile`` alone when given, else against the system roots plus the user's
    ``Trust`` store; ``insecure`` checks nothing (and warns). ``keylog`` (default
    ``$SSLKEYLOGFILE``) receives the TLS secrets for Wireshark.

    httpx 0.28 ignores ``cert=`` whenever ``verify`` is a path; pass this context as
    ``verify=`` instead, and the certificate and the CA go together.
    """
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    if insecure:
        if cafile is not None:
            raise ValueError("insecure=True and cafile contradict each other")
        warnings.warn(
            "mutls.client.ssl_context(insecure=True): the server's certificate is not checked",
            stacklevel=2,
        )
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    else:
        ServerTrust.resolve(cafile).apply_to_ssl(ctx)
    if cert is not None:
        identity = cert if isinstance(cert, Identity) else Identity.load(cert, password, key)
        load_identity(ctx, identity)
    log = keylog_path(keylog)
    if log is not None:
        KeyLog(log).close()  # created 0600 before OpenSSL appends to it
        ctx.keylog_filename = str(log)
    return ctx


def requests_adapter(
    cert: PathLike | Identity | None = None,
    password: str | None = None,
    *,
    key: PathLike | None = None,
    cafile: PathLike | None = None,
    insecure: bool = False,
    session: Any = None,
    **adapter_kwargs: Any,
) -> Any:
    """A ``requests`` transport adapter that presents a client certificate (P12 or PEM).

    Mount it for the sites that want the certificate::

        session = requests.Session()
        session.mount("https://api.example.org/", requests_adapter("me.p12", "s3kr3t"))

    With ``session`` it is mounted on ``https://`` for you. The adapter's context decides the
    server trust: a per-request ``verify=`` or ``cert=`` is ignored (requests would otherwise
    load its own CA bundle into the context).
    """
    ctx = ssl_context(cert, password, key=key, cafile=cafile, insecure=insecure)
    adapter = _adapter_class()(ctx, **adapter_kwargs)
    if session is not None:
        session.mount("https://", adapter)
    return adapter


def _adapter_class() -> type[Any]:
    from requests.adapters import HTTPAdapter

    class ClientCertificateAdapter(HTTPAdapter):
        """An ``HTTPAdapter`` whose connections use one prepared ``ssl.SSLContext``."""

        def __init__(self, context: ssl.SSLContext, **kwargs: Any) -> None:
            self.ssl_context = context
            super().__init__(**kwargs)

        def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
            kwargs["ssl_context"] = self.ssl_context
            super().init_poolmanager(*args, **kwargs)

        def proxy_manager_for(self, proxy: str, **proxy_kwargs: Any) -> Any:
            proxy_kwargs["ssl_context"] = self.ssl_context
            return super().proxy_manager_for(proxy, **proxy_kwargs)

        def build_connection_pool_key_attributes(
            self, request: Any, verify: Any, cert: Any = None
        ) -> tuple[dict[str, Any], dict[str, Any]]:
            host, pool = super().build_connection_pool_key_attributes(request, verify, None)
            for name in ("ca_certs", "ca_cert_dir", "cert_file", "key_file"):
                pool.pop(name, None)
            pool["cert_reqs"] = self._cert_reqs()
            return host, pool

        def cert_verify(self, conn: Any, url: str, verify: Any, cert: Any) -> None:
            conn.cert_reqs = self._cert_reqs()
            conn.ca_certs = None
            conn.ca_cert_dir = None

        def _cert_reqs(self) -> str:
            none = self.ssl_context.verify_mode == ssl.CERT_NONE
            return "CERT_NONE" if none else "CERT_REQUIRED"

    return ClientCertificateAdapter
