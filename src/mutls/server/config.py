"""``ServerConfig``: every server setting in one object, validated once, that builds what runs.

The CLI (``mutls serve``, ``mutls xsp``) and Python callers both make one; nothing downstream
re-checks a setting. It builds the TLS context and the app once, before any socket is accepted.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mutls.authz.access import Access
from mutls.errors import MutlsError, UsageError
from mutls.http.connection import HTTPLimits
from mutls.http.forwarded_certificates import KNOWN_NAMES, ForwardedHeader
from mutls.http.http2 import H2Limits
from mutls.pki.identity import Identity
from mutls.pki.trust import TrustMaterial
from mutls.server.flags import FLAGS, JUDGE_FORWARDED, TLS_ONLY, group_flags, needs_tls
from mutls.tls.options import (
    MAX_CLIENT_CHAIN,
    MIN_CLIENT_CHAIN,
    ClientCertMode,
    HTTPVersions,
    TLSOptions,
    VerifyPolicy,
)
from mutls.ws.session import WebSocketLimits

if TYPE_CHECKING:
    from mutls.apps.base import HTTPApp
    from mutls.apps.forwarded_certificates import ForwardedCertificates
    from mutls.apps.peers import TrustedPeers
    from mutls.tls.context import ServerContext
    from mutls.tls.tickets import TicketKeys


@dataclass(frozen=True)
class Timeouts:
    """Seconds a client may take: to finish the TLS handshake, to send a request head, to send
    the next request on a kept-alive connection, to read any of a response that fills the
    socket buffer (``send``, nginx's ``send_timeout``); how long a graceful stop waits; and how
    long the app may go without producing output (``None``: as long as it likes)."""

    handshake: float = 10.0
    header: float = 15.0
    keep_alive: float = 5.0
    graceful: float = 10.0
    app: float | None = 60.0
    send: float = 60.0


#: the smallest request head limit that still fits a browser's ordinary request.
MIN_HEAD_BYTES = 1024


@dataclass(frozen=True)
class ServerConfig:
    """One server: where it listens, its TLS identity and client-certificate rules, its app.

    ``identity`` turns TLS on. ``trust`` is what client certificates are verified against; when
    ``None`` it is built from ``client_ca_files`` or, without them, the user's certificate
    stores (:func:`mutls.store.client_trust`). ``app`` is ``module:attribute`` (or the app
    object itself, from Python) or ``None`` for the article's test page (with static files
    from ``root`` when given).
    """

    host: str | None = "127.0.0.1"
    port: int = 8080
    identity: Identity | None = None
    client_cert: ClientCertMode = ClientCertMode.NONE
    verify: VerifyPolicy = VerifyPolicy.STRICT
    trust: TrustMaterial | None = None
    client_ca_files: tuple[str, ...] = ()
    crl_files: tuple[str, ...] = ()
    machine_store: bool = False
    #: the handshake's tuning (``--no-ca-names``, ``--ciphers``, ``--tls13-ciphers``,
    #: ``--reject-at-handshake``, ``--keylog``, ``--max-client-chain``), held as the one value
    #: the TLS context is made of.
    tls_options: TLSOptions = field(default_factory=TLSOptions)
    app: str | object | None = None
    app_dir: str = "."
    root: str | None = None
    limits: HTTPLimits = field(default_factory=HTTPLimits)
    timeouts: Timeouts = field(default_factory=Timeouts)
    max_connections: int = 1000
    #: ``--max-failures-per-source``: failed connections an address may have per 10 s before
    #: its new ones are held and closed (:mod:`mutls.server.sources`); 0: no budget.
    max_failures_per_source: int = 32
    threads: int = 16
    thread_queue: int | None = None
    workers: int = 1
    pidfile: str | None = None
    verbose: bool = False
    #: ``--trusted-proxy``: peers (IPs, CIDRs) whose forwarded certificate header is believed.
    trusted_proxies: tuple[str, ...] = ()
    #: ``--forwarded-cert-header``: the one header those proxies set (see docs/server.md).
    forwarded_cert_header: str | None = None
    #: ``--allow FILE`` and ``--remote-user``: which valid certificates may call, and the
    #: ``REMOTE_USER`` they name (:mod:`mutls.authz`).
    access: Access | None = None
    #: ``--proxy-headers``: believe X-Forwarded-For/-Proto and Forwarded from trusted peers.
    proxy_headers: bool = False
    #: ``--proxy-protocol``: every connection starts with a trusted peer's PROXY header.
    proxy_protocol: bool = False
    #: ``--fd N``: serve these inherited listening sockets (``--address``/``--port`` unused).
    fds: tuple[int, ...] = ()
    #: ``--ticket-key-file``: session-ticket keys in nginx's format (first encrypts, all
    #: decrypt), shared by every worker, generation and machine; none: random, made at start.
    ticket_key_files: tuple[str, ...] = ()
    #: ``--reload-on-change``: reload when a file the server was started from changes.
    reload_on_change: bool = False
    #: the files besides the trust ones that this configuration was made from (certificate,
    #: key, P12, password file, ``--allow`` rules): what ``--reload-on-change`` watches.
    source_files: tuple[str, ...] = ()
    #: makes this configuration again from where it came from, for a reload (the CLI: its
    #: flags, the files they name, the password given at start); ``None``: the same settings,
    #: with the trust read again. See :mod:`mutls.server.reload`.
    reload_source: Callable[[], ServerConfig] | None = field(
        default=None, compare=False, repr=False
    )
    #: ``--no-access-log`` turns this off: no access line is made (nor formatted).
    access_log: bool = True
    #: ``--log-level`` (``None``: info, or debug with ``verbose``), ``--log-format`` (text or
    #: json), ``--log-config`` (a logging dictConfig as JSON or TOML; it then decides).
    log_level: str | None = None
    log_format: str = "text"
    log_config: str | None = None
    #: ``--metrics-address HOST:PORT``: ``/metrics`` and ``/health`` over plain HTTP there.
    metrics_address: str | None = None
    #: ``--ws-max-size``, ``--ws-max-queue``, ``--ws-ping-interval``, ``--ws-ping-timeout``,
    #: ``--ws-close-timeout``: what one WebSocket may cost (:mod:`mutls.ws`).
    websocket: WebSocketLimits = field(default_factory=WebSocketLimits)
    #: ``--http``: the HTTP versions offered in ALPN (HTTP/2 is served over TLS only).
    http: HTTPVersions = HTTPVersions.AUTO
    #: ``--h2-max-streams``, ``--h2-max-resets``, ``--h2-max-control-frames``.
    h2_limits: H2Limits = field(default_factory=H2Limits)

    def __post_init__(self) -> None:
        self._validate()

    @property
    def tls(self) -> bool:
        """Whether the server speaks HTTPS."""
        return self.identity is not None

    def with_changes(self, **changes: Any) -> ServerConfig:
        """A copy with some settings changed (validated again)."""
        return replace(self, **changes)

    def _validate(self) -> None:
        if not 0 <= self.port <= 65535:
            raise UsageError(f"--port {self.port}: not a TCP port (0-65535)")
        if self.identity is None:
            self._validate_tls_only()
        if self.tls_options.reject_at_handshake and self.client_cert is not ClientCertMode.REQUIRE:
            raise UsageError(
                f"{FLAGS['tls_options.reject_at_handshake']} needs a required certificate "
                f"(--https-client-require or {FLAGS['client_cert']} require)"
            )
        max_client_chain = self.tls_options.max_client_chain
        if not MIN_CLIENT_CHAIN <= max_client_chain <= MAX_CLIENT_CHAIN:
            raise UsageError(
                f"{FLAGS['tls_options.max_client_chain']} {max_client_chain}: use "
                f"{MIN_CLIENT_CHAIN} to {MAX_CLIENT_CHAIN} bytes (a leaf and two intermediates "
                "take about 4 KB)"
            )
        if self.root is not None and self.app is not None:
            raise UsageError(
                "--root and APP contradict each other: static files are served with the "
                "built-in test page only (serve them from your app)"
            )
        if self.root is not None and not Path(self.root).is_dir():
            raise UsageError(f"--root {self.root}: not a directory")
        if not Path(self.app_dir).is_dir():
            raise UsageError(f"--app-dir {self.app_dir}: not a directory")
        if self.workers < 1:
            raise UsageError(f"--workers {self.workers}: must be at least 1")
        if self.threads < 1:
            raise UsageError(f"--threads {self.threads}: must be at least 1")
        if self.thread_queue is not None and self.thread_queue < 0:
            raise UsageError(f"--thread-queue {self.thread_queue}: must be 0 or more")
        if self.max_connections < 1:
            raise UsageError(f"--max-connections {self.max_connections}: must be at least 1")
        if self.max_failures_per_source < 0:
            raise UsageError(
                f"{FLAGS['max_failures_per_source']} {self.max_failures_per_source}: must be 0 "
                "(no budget) or more"
            )
        if self.access is not None and self.client_cert is ClientCertMode.NONE:
            raise UsageError(
                "--allow and --remote-user judge client certificates: give --client-cert "
                "optional or require"
            )
        self._validate_forwarding()
        self._validate_observability()
        self._validate_http2()
        self._validate_timeouts()
        self._validate_limits()
        self._validate_trust_files()
        if self.ticket_key_files:
            self.ticket_keys()  # a UsageError naming the file, now rather than at the start
        self._validate_websocket()

    def _validate_tls_only(self) -> None:
        """Without a certificate, no setting that needs TLS (each named by its flag); behind a
        proxy that forwards certificates, those that judge them are allowed."""
        defaults = {name: item.default for name, item in ServerConfig.__dataclass_fields__.items()}
        defaults["tls_options"] = TLSOptions()
        allowed = JUDGE_FORWARDED if self.forwarded_cert_header else ()
        for name in TLS_ONLY:
            group, _, setting = name.rpartition(".")
            value, default = getattr(self, group or setting), defaults[group or setting]
            if group:
                value, default = getattr(value, setting), getattr(default, setting)
            if name not in allowed and value != default:
                raise UsageError(
                    needs_tls(FLAGS[name], behind_proxy=bool(allowed and self.trusted_proxies))
                )

    def _validate_forwarding(self) -> None:
        self._validate_peers()
        if not self.trusted_proxies and self.forwarded_cert_header is None:
            return
        from mutls.apps.forwarded_certificates import trusted_networks

        trusted_networks(self.trusted_proxies)  # raises UsageError naming the bad value
        if not self.trusted_proxies:
            raise UsageError("--forwarded-cert-header needs --trusted-proxy ADDR")
        if not self.forwarded_cert_header:
            if self.proxy_headers or self.proxy_protocol:
                return
            raise UsageError(
                "--trusted-proxy needs what to believe from those peers: --proxy-headers, "
                "--proxy-protocol, or --forwarded-cert-header NAME (the certificate header "
                "your proxy sets, e.g. X-Client-Cert for nginx, x-forwarded-client-cert for Envoy)"
            )
        if "*" in self.trusted_proxies:
            raise UsageError(
                "--forwarded-cert-header with --trusted-proxy '*' would let anyone forge a "
                "client certificate: name the proxies' addresses"
            )
        if self.proxy_protocol:
            raise UsageError(
                "--proxy-protocol and --forwarded-cert-header contradict each other: with the "
                "PROXY protocol mutls terminates TLS itself and reads the client certificate "
                "from its own handshake"
            )
        try:
            ForwardedHeader.named(self.forwarded_cert_header)
        except ValueError as exc:
            raise UsageError(
                f"--forwarded-cert-header {self.forwarded_cert_header}: {exc}"
            ) from None
        if self.identity is not None:
            raise UsageError(
                "--trusted-proxy: the proxy terminates TLS, so mutls serves it plain HTTP; "
                "drop --cert/--p12 (or --trusted-proxy)"
            )
        if self.client_cert is ClientCertMode.NONE:
            raise UsageError(
                "--trusted-proxy with --client-cert none would ignore every forwarded "
                "certificate: give --client-cert optional or require"
            )

    def _validate_peers(self) -> None:
        """--proxy-headers and --proxy-protocol believe trusted peers only: there must be some.
        The TLS rule of --trusted-proxy is for forwarded certificates only (the check above)."""
        from mutls.apps.peers import TrustedPeers

        TrustedPeers.parse(self.trusted_proxies)  # raises UsageError naming the bad value
        for flag, on in (
            ("--proxy-headers", self.proxy_headers),
            ("--proxy-protocol", self.proxy_protocol),
        ):
            if on and not self.trusted_proxies:
                raise UsageError(
                    f"{flag} needs the proxies to believe: --forwarded-allow-ips ADDRS "
                    "(or --trusted-proxy ADDR; IPs or CIDRs)"
                )
        for fd in self.fds:
            if fd < 0:
                raise UsageError(f"--fd {fd}: not a file descriptor")

    def _validate_observability(self) -> None:
        """The log and metrics flags (a --log-config file is read now, so a broken one is a
        line at start, naming it)."""
        from mutls.server.log import LOG_FORMATS, LOG_LEVELS, read_log_config

        if self.log_level is not None and self.log_level not in LOG_LEVELS:
            raise UsageError(f"--log-level {self.log_level}: use one of {', '.join(LOG_LEVELS)}")
        if self.verbose and self.log_level not in (None, "debug"):
            raise UsageError(
                f"--verbose and --log-level {self.log_level} contradict each other "
                "(--verbose is --log-level debug): give one"
            )
        if self.log_format not in LOG_FORMATS:
            raise UsageError(f"--log-format {self.log_format}: use text or json")
        if self.log_config is not None:
            read_log_config(self.log_config)
        where = self.metrics_listen
        if where is not None and where[1] != 0 and where[1] == self.port:
            raise UsageError(
                f"--metrics-address {self.metrics_address}: that is the server's own port; "
                "metrics are plain HTTP on a port of their own (e.g. 127.0.0.1:9100)"
            )

    @property
    def effective_log_level(self) -> str:
        """The level the ``mutls`` loggers log at."""
        return self.log_level or ("debug" if self.verbose else "info")

    @property
    def metrics_listen(self) -> tuple[str, int] | None:
        """``--metrics-address`` as (host, port), or ``None``."""
        if self.metrics_address is None:
            return None
        from mutls.server.metrics import metrics_address

        return metrics_address(self.metrics_address)

    def _validate_http2(self) -> None:
        if self.http is HTTPVersions.HTTP2 and self.identity is None:
            raise UsageError(
                "--http 2 needs TLS (HTTP/2 is offered through ALPN; cleartext h2c is not "
                "served): give a certificate (--cert/--key or --p12)"
            )
        for name, flag in group_flags("h2_limits").items():
            value = getattr(self.h2_limits, name)
            if value < 1:
                raise UsageError(f"{flag} {value}: must be at least 1")

    def _validate_trust_files(self) -> None:
        """--client-ca and --crl files are read once here, so a missing or corrupt one is a
        line when the config is made, not a traceback when the server starts."""
        from mutls.pki.certs import load_certificates
        from mutls.pki.crl import load_crls

        for flag, paths, load in (
            ("--client-ca", self.client_ca_files, load_certificates),
            ("--crl", self.crl_files, load_crls),
        ):
            for path in paths:
                try:
                    load(path)
                except MutlsError as exc:
                    raise UsageError(f"{flag} {exc}") from None

    def _validate_timeouts(self) -> None:
        for item in fields(self.timeouts):
            seconds = getattr(self.timeouts, item.name)
            if seconds is None and item.name == "app":
                continue
            if not isinstance(seconds, int | float) or not math.isfinite(seconds) or seconds <= 0:
                raise UsageError(
                    f"{FLAGS[f'timeouts.{item.name}']} {seconds}: must be a positive number "
                    "of seconds"
                )

    def _validate_limits(self) -> None:
        flags, limits = group_flags("limits"), self.limits
        for name, least, rule in (
            ("max_head_bytes", MIN_HEAD_BYTES, f"must be at least {MIN_HEAD_BYTES} bytes"),
            ("max_headers", 1, "must be at least 1"),
            ("max_body_bytes", 0, "must be 0 or more"),
            ("min_chunk_average", 0, "must be 0 (no limit) or more"),
        ):
            value = getattr(limits, name)
            if value < least:
                raise UsageError(f"{flags[name]} {value}: {rule}")

    def _validate_websocket(self) -> None:
        ws, flags = self.websocket, group_flags("websocket")
        if ws.max_message_bytes < 1:
            raise UsageError(
                f"{flags['max_message_bytes']} {ws.max_message_bytes}: must be at least 1 byte"
            )
        if ws.max_queue < 1:
            raise UsageError(f"{flags['max_queue']} {ws.max_queue}: must be at least 1")
        for name in ("ping_interval", "ping_timeout", "close_timeout"):
            flag, seconds = flags[name], getattr(ws, name)
            if seconds is None and name == "ping_interval":
                continue
            if not isinstance(seconds, int | float) or not math.isfinite(seconds) or seconds <= 0:
                raise UsageError(f"{flag} {seconds}: must be a positive number of seconds")

    @property
    def queued_requests(self) -> int:
        """WSGI requests that may wait for a thread before more are answered 503."""
        return self.threads if self.thread_queue is None else self.thread_queue

    # -- what the config builds --------------------------------------------------------------

    def trust_material(self) -> TrustMaterial:
        """The trust for client certificates (``--client-ca`` files, else the user's stores)."""
        if self.trust is not None:
            return self.trust
        from mutls.store import client_trust

        return client_trust(
            client_ca_files=self.client_ca_files,
            crl_files=self.crl_files,
            machine=self.machine_store,
        )

    def tls_context(
        self, trust: TrustMaterial | None = None, ticket_keys: TicketKeys | None = None
    ) -> ServerContext | None:
        """The engine's ``ServerContext`` (``None`` for plain HTTP); raises MutlsError.

        ``trust`` saves building the trust material twice when the caller has it already;
        ``ticket_keys`` are shared with other contexts (default: OpenSSL's, this one's alone).
        """
        if self.identity is None:
            return None
        from mutls.tls.context import ServerContext, ServerTLSConfig

        if self.client_cert is ClientCertMode.NONE:
            trust = TrustMaterial()
        elif trust is None:
            trust = self.trust_material()
        return ServerContext(
            ServerTLSConfig.with_options(
                self.tls_options,
                identity=self.identity,
                client_cert_mode=self.client_cert,
                trust=trust,
                ticket_keys=ticket_keys,
                http=self.http,
            )
        )

    def ticket_keys(self) -> TicketKeys | None:
        """The keys of ``--ticket-key-file`` (read now), ``None`` without them."""
        if not self.ticket_key_files:
            return None
        from mutls.tls.tickets import TicketKeys

        return TicketKeys.load(self.ticket_key_files)

    def watched_paths(self) -> tuple[str, ...]:
        """Every file and folder this configuration was read from, for ``--reload-on-change``:
        :attr:`source_files`, ``--client-ca``, ``--crl``, ``--ticket-key-file``, and the
        certificate stores whose trust it reads (``Trust``, ``CA``, ``Disallowed``)."""
        paths = [*self.source_files, *self.client_ca_files, *self.crl_files]
        paths += self.ticket_key_files
        judges = self.tls or bool(self.trusted_proxies)
        if judges and self.client_cert is not ClientCertMode.NONE and self.trust is None:
            from mutls.store import StoreName, store_directory

            for machine in (True,) if self.machine_store else (False, True):
                for name in (StoreName.TRUST, StoreName.CA, StoreName.DISALLOWED):
                    paths.append(str(store_directory(name, machine=machine)))
        return tuple(dict.fromkeys(paths))

    def forwarded_certificates(self) -> ForwardedCertificates | None:
        """How requests from ``--trusted-proxy`` peers carry certificates (``None``: they
        do not); raises MutlsError when the trust cannot be read."""
        if not self.trusted_proxies or self.forwarded_cert_header is None:
            return None
        from mutls.apps.forwarded_certificates import ForwardedCertificates
        from mutls.tls.verify import ClientVerifier

        return ForwardedCertificates(
            self.trusted_proxies,
            self.forwarded_cert_header,
            ClientVerifier(self.trust_material()),
            self.client_cert,
            self.verify,
            self.access,
        )

    def trusted_peers(self) -> TrustedPeers | None:
        """``--trusted-proxy``/``--forwarded-allow-ips`` as one matcher (``None``: none)."""
        if not self.trusted_proxies:
            return None
        from mutls.apps.peers import TrustedPeers

        return TrustedPeers.parse(self.trusted_proxies)

    @property
    def certificate_header_names(self) -> frozenset[bytes]:
        """Headers set aside from every request, never shown to the app: the known
        client-certificate names and the configured forwarded one
        (see mutls.http.forwarded_certificates)."""
        if not self.forwarded_cert_header:
            return KNOWN_NAMES
        return KNOWN_NAMES | ForwardedHeader.named(self.forwarded_cert_header).names

    def load_app(self) -> HTTPApp:
        """Import the app (or make the test page)."""
        from mutls.apps import build_app

        return build_app(
            self.app,
            app_dir=self.app_dir,
            root=self.root,
            threads=self.threads,
            thread_queue=self.queued_requests,
        )
