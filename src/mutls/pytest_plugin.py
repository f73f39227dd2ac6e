"""pytest fixtures to test an app's client-certificate handling, in trustme's spirit.

Installed with mutls (a ``pytest11`` entry point), so a test only names them::

    def test_only_poupou(mutls_server, mutls_client_cert):
        server = mutls_server(app)                     # WSGI or ASGI, require + strict
        poupou = mutls_client_cert("CN=poupou")
        with httpx.Client(verify=poupou.ssl_context()) as client:
            assert client.get(server.url).status_code == 200

- ``mutls_ca``: the CA that ``mutls_server`` trusts for client certificates (and that signs
  the servers' own certificates, so clients trust the servers by trusting it);
- ``mutls_client_cert(subject, **options)``: a client identity issued by ``mutls_ca`` (or
  ``issuer=`` another CA, for an untrusted one); its ``.ssl_context()`` presents it;
- ``mutls_server(app, client_cert="require", verify="strict", **config)``: the app served on
  127.0.0.1 by the real server, on a thread, stopped at teardown; ``.url`` is
  ``https://localhost:PORT/``;
- ``mutls_client``: an httpx client presenting a default valid certificate (``CN=mutls test
  client``) and trusting the test servers.

Nothing here writes a private key to disk: the stdlib context gets the key through
:func:`mutls.client.ssl_context`'s in-memory file.
"""

from __future__ import annotations

import datetime as dt
import ssl
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    import httpx

    from mutls.pki import CertificateAuthority, Identity
    from mutls.server import RunningServer, ServerConfig

DEFAULT_CLIENT = "CN=mutls test client"


@dataclass
class TestCA:
    """``mutls_ca``: a CA in memory, its certificate also in a PEM file (``cert_path``)."""

    __test__ = False  # not a test class, whatever pytest's name rules say

    authority: CertificateAuthority
    cert_path: Path
    _server: Identity | None = field(default=None, repr=False)

    @property
    def certificate(self) -> Any:
        """The CA certificate (``cryptography.x509.Certificate``)."""
        return self.authority.certificate

    @property
    def server_identity(self) -> Identity:
        """The test servers' identity: ``localhost``, ``127.0.0.1`` and ``::1``."""
        if self._server is None:
            self._server = self.authority.issue_server("localhost", "127.0.0.1", "::1")
        return self._server

    def issue_client(
        self,
        subject: str = DEFAULT_CLIENT,
        *,
        key: Any = None,
        eku: Sequence[Any] | None = ("clientAuth",),
        san: Sequence[str] = (),
        email: str | None = None,
        days: int | None = None,
        not_before: dt.datetime | None = None,
        not_after: dt.datetime | None = None,
        issuer: CertificateAuthority | None = None,
    ) -> ClientCert:
        """A client identity: any key type (``"rsa"``, ``"ed25519"``, a ``KeySpec``), EKU
        (names or OIDs; ``None``: no EKU extension), SANs, validity; from ``issuer`` instead
        of this CA to make one the servers do not trust."""
        from mutls.pki import KeySpec, parse_eku, parse_general_name

        spec = KeySpec.parse(key) if isinstance(key, str) else key
        if not_after is not None and not_before is None:  # an expired one starts before it ends
            not_before = min(not_after - dt.timedelta(days=30), _now() - dt.timedelta(minutes=5))
        oids = None if eku is None else [o for e in eku for o in _eku(e, parse_eku)]
        names = [parse_general_name(s) for s in san]
        if email is not None:
            names.append(parse_general_name(f"email:{email}"))
        identity = (issuer or self.authority).issue(
            subject,
            eku=oids,
            san=names,
            key=spec,
            days=days,
            not_before=not_before,
            not_after=not_after,
        )
        return ClientCert(identity, self.cert_path)


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(microsecond=0)


def _eku(value: Any, parse: Callable[[str], list[Any]]) -> list[Any]:
    return parse(value) if isinstance(value, str) else [value]


@dataclass(frozen=True)
class ClientCert:
    """A client identity from ``mutls_client_cert``."""

    identity: Identity
    ca_path: Path

    @property
    def certificate(self) -> Any:
        """The client's certificate (``cryptography.x509.Certificate``)."""
        return self.identity.certificate

    def ssl_context(self) -> ssl.SSLContext:
        """A client context that presents this certificate and trusts the test servers."""
        from mutls.client import ssl_context

        return ssl_context(self.identity, cafile=self.ca_path)

    def write_pem(self, directory: str | Path) -> tuple[Path, Path]:
        """``(cert.pem, key.pem)`` in ``directory`` (key 0600), for curl, nginx, subprocesses."""
        name = (self.identity.common_name or "client").replace("/", "_")
        cert, key = Path(directory) / f"{name}.pem", Path(directory) / f"{name}.key"
        self.identity.write_pem(cert, key, overwrite=True)
        return cert, key


@dataclass(frozen=True)
class TestServer:
    """A server from ``mutls_server``: where it listens, and what it was given."""

    __test__ = False

    url: str
    port: int
    config: ServerConfig
    running: RunningServer


@pytest.fixture(scope="session")
def mutls_ca(tmp_path_factory: pytest.TempPathFactory) -> TestCA:
    """The CA that ``mutls_server`` trusts for client certificates (one per session)."""
    from mutls.pki import CertificateAuthority, write_certificate

    authority = CertificateAuthority.create("CN=mutls pytest CA")
    path = tmp_path_factory.mktemp("mutls-ca") / "ca.pem"
    write_certificate(path, authority.certificate)
    return TestCA(authority, path)


@pytest.fixture
def mutls_client_cert(mutls_ca: TestCA) -> Callable[..., ClientCert]:
    """``mutls_client_cert(subject, **options)``: a client identity (see
    :meth:`TestCA.issue_client` for the options)."""
    return mutls_ca.issue_client


@pytest.fixture
def mutls_server(mutls_ca: TestCA) -> Iterator[Callable[..., TestServer]]:
    """``mutls_server(app, client_cert="require", verify="strict", **config)``: serve a WSGI
    or ASGI app (``None``: the test page) over TLS for this test; more settings are
    :class:`mutls.server.ServerConfig`'s (``access=``, ``trust=``, ``timeouts=``, ...)."""
    from mutls.pki import TrustMaterial
    from mutls.server import RunningServer, ServerConfig
    from mutls.tls import ClientCertMode, VerifyPolicy

    started: list[RunningServer] = []

    def serve(
        app: Any, client_cert: str = "require", verify: str = "strict", **config: Any
    ) -> TestServer:
        settings: dict[str, Any] = {
            "host": "127.0.0.1",
            "port": 0,
            "identity": mutls_ca.server_identity,
            "client_cert": ClientCertMode(client_cert),
            "verify": VerifyPolicy(verify),
            "trust": TrustMaterial(anchors=(mutls_ca.certificate,)),
            "app": app,
            **config,
        }
        running = RunningServer(ServerConfig(**settings))
        running.start(timeout=30)
        started.append(running)
        port = running.ports[0]
        return TestServer(f"https://localhost:{port}/", port, running.config, running)

    yield serve
    for running in reversed(started):
        running.stop(timeout=30)


@pytest.fixture
def mutls_client(mutls_client_cert: Callable[..., ClientCert]) -> Iterator[httpx.Client]:
    """An httpx client that presents a valid certificate (``CN=mutls test client``)."""
    import httpx

    with httpx.Client(verify=mutls_client_cert(DEFAULT_CLIENT).ssl_context(), timeout=30) as c:
        yield c
