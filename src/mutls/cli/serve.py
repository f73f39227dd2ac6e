"""``mutls serve [APP]``: serve a WSGI or ASGI app (or the article's test page) over HTTPS with
client certificates. ``mutls xsp`` shares these options (see :mod:`mutls.cli.xsp`).

How the flags combine (for both commands):

- no certificate and no ``--https*``: plain HTTP;
- ``--https``: TLS, no client certificate asked for;
- ``--https-client-accept`` / ``--https-client-require``: optional / require, policy report (XSP);
- a certificate without ``--https*``: ``--client-cert`` (default none), ``--verify`` (default
  strict);
- ``--verify`` overrides the policy; contradicting flags are refused, naming both.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import re
import signal
import sys
import threading
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Any

from mutls.apps.peers import split_peers
from mutls.authz import Access, AllowRules, UserName
from mutls.cli.common import ArgumentParser, password_from
from mutls.errors import MutlsError, UsageError, WrongPasswordError
from mutls.http.connection import HTTPLimits
from mutls.http.framing import FREE_CHUNKS
from mutls.http.http2 import H2Limits
from mutls.pki.identity import Identity
from mutls.server.config import ServerConfig, Timeouts
from mutls.server.flags import FLAGS, group_flags, needs_tls
from mutls.tls.options import ClientCertMode, HTTPVersions, TLSOptions, VerifyPolicy
from mutls.ws.session import WebSocketLimits

HELP = "serve a WSGI/ASGI app (or the test page) over HTTPS with client certificates"

HTTPS_FLAGS = {
    "https": ("--https", ClientCertMode.NONE),
    "https_client_accept": ("--https-client-accept", ClientCertMode.OPTIONAL),
    "https_client_require": ("--https-client-require", ClientCertMode.REQUIRE),
}


def add_server_options(parser: argparse.ArgumentParser, *, default_address: str) -> None:
    """The options ``serve`` and ``xsp`` share (XSP's own and the modern ones)."""
    where = parser.add_argument_group("where")
    where.add_argument("--port", type=int, default=8080, help="TCP port (default 8080)")
    where.add_argument(
        "--address",
        default=default_address,
        help=f"address to listen on; '*' for every IPv4 and IPv6 one (default {default_address})",
    )
    where.add_argument("--root", metavar="DIR", help="also serve static files from DIR")
    where.add_argument(
        "--fd",
        type=int,
        action="append",
        metavar="N",
        help="serve the inherited listening socket N instead of --address/--port (repeatable); "
        "systemd's LISTEN_FDS (socket activation) is used without it",
    )
    xsp = parser.add_argument_group("XSP's TLS switches")
    for dest, (flag, _mode) in HTTPS_FLAGS.items():
        xsp.add_argument(flag, dest=dest, action="store_true", help=_HTTPS_HELP[dest])
    ident = parser.add_argument_group("the server's certificate")
    ident.add_argument("--p12file", "--p12", dest="p12", metavar="FILE", help="PKCS#12 identity")
    ident.add_argument("--cert", metavar="FILE", help="PEM certificate (+chain)")
    ident.add_argument("--pkfile", "--key", dest="key", metavar="FILE", help="PEM private key")
    ident.add_argument("--pkpwd", metavar="PASSWORD", help="password of the P12 or key")
    ident.add_argument("--pkpwd-file", "--pass-file", dest="pass_file", metavar="FILE")
    ident.add_argument("--pkpwd-env", "--pass-env", dest="pass_env", metavar="VAR")
    client = parser.add_argument_group("client certificates")
    client.add_argument(
        FLAGS["client_cert"],
        choices=[m.value for m in ClientCertMode],
        help="ask for a client certificate: none, optional, require (default none)",
    )
    client.add_argument(
        "--verify",
        choices=[p.value for p in VerifyPolicy],
        help="strict: refuse invalid certificates with 403; report: let the app decide",
    )
    client.add_argument(
        FLAGS["client_ca_files"],
        action="append",
        metavar="FILE",
        help="trust anchors for client certificates (repeatable; default: the Trust store)",
    )
    client.add_argument(
        FLAGS["crl_files"], action="append", metavar="FILE", help="CRL file (repeatable)"
    )
    client.add_argument(
        "--machine-store", action="store_true", help="use the machine's stores, not the user's"
    )
    client.add_argument(
        FLAGS["tls_options.send_ca_names"],
        action="store_true",
        help="send no CA names in the CertificateRequest (clients offer any certificate)",
    )
    client.add_argument(
        FLAGS["tls_options.reject_at_handshake"],
        action="store_true",
        help="with require: fail the TLS handshake when no certificate is sent, not a 403",
    )
    proxy = parser.add_argument_group("behind a proxy or load balancer (nginx, Envoy, HAProxy)")
    proxy.add_argument(
        "--trusted-proxy",
        "--forwarded-allow-ips",
        action="append",
        metavar="ADDR",
        help="the trusted proxies: IPs or CIDRs, comma-separated or repeated ('*': every peer); "
        "only their forwarded certificate, proxy headers or PROXY header is believed",
    )
    proxy.add_argument(
        "--proxy-headers",
        action="store_true",
        help="apps see the client address and scheme that X-Forwarded-For/-Proto or Forwarded "
        "(RFC 7239) of a trusted proxy report",
    )
    proxy.add_argument(
        "--proxy-protocol",
        action="store_true",
        help="every connection starts with a trusted proxy's PROXY header (v1 or v2, HAProxy's "
        "send-proxy); mutls still terminates TLS; other peers are refused",
    )
    proxy.add_argument(
        "--forwarded-cert-header",
        metavar="NAME",
        help="the header the proxy sets: X-Client-Cert (nginx $ssl_client_escaped_cert), "
        "Client-Cert or 'Client-Cert, Client-Cert-Chain' (RFC 9440), or "
        "x-forwarded-client-cert (Envoy, forward_client_cert_details SANITIZE_SET)",
    )
    tls = parser.add_argument_group("TLS tuning")
    for name, metavar, text in (
        ("ciphers", "LIST", "OpenSSL cipher string for TLS 1.2"),
        ("tls13_ciphers", "LIST", "TLS 1.3 cipher suites"),
        ("keylog_path", "FILE", "write TLS secrets to FILE (debugging only: INSECURE)"),
    ):
        tls.add_argument(FLAGS[f"tls_options.{name}"], metavar=metavar, help=text)
    tls.add_argument(
        FLAGS["ticket_key_files"],
        action="append",
        metavar="FILE",
        help="session-ticket key in nginx's ssl_session_ticket_key format (80 bytes: "
        "`openssl rand 80 > FILE`; repeatable: the first encrypts, all decrypt; read again on "
        "reload); instances with the same keys resume each other's sessions (default: random "
        "keys made at start, shared by every worker and kept across reloads)",
    )
    tls.add_argument(
        "--http",
        choices=[v.value for v in HTTPVersions],
        help="HTTP versions offered in ALPN: auto (h2 and http/1.1, the default), 1.1, or 2 "
        "(h2 only: clients that offer only http/1.1 are refused in the handshake)",
    )
    add_limit_options(parser)
    run = parser.add_argument_group("running")
    run.add_argument("--nonstop", action="store_true", help="do not stop when Return is pressed")
    run.add_argument(
        "--verbose", action="store_true", help="log at debug level (--log-level debug)"
    )
    run.add_argument("--pidfile", metavar="FILE", help="write the process id to FILE")
    run.add_argument(
        "--reload-on-change",
        action="store_true",
        help="reload, as SIGHUP does, when a file the server was started from changes "
        "(certificate, key, P12, password file, --client-ca, --crl, --ticket-key-file, "
        "--allow, the certificate stores); polled every second. A reload (SIGHUP) reads all "
        "of them again and switches only when every one is good; a broken one keeps the "
        "running configuration and is logged",
    )
    add_observability_options(parser)


def add_observability_options(parser: argparse.ArgumentParser) -> None:
    """Logs and metrics (``ServerConfig`` validates the values)."""
    group = parser.add_argument_group("logs and metrics")
    group.add_argument(
        "--no-access-log",
        dest="access_log",
        action="store_false",
        help="no line per request (the access log is on by default, at INFO)",
    )
    group.add_argument(
        "--log-level",
        metavar="LEVEL",
        help="debug, info, warning, error or critical (default info; warning also hides "
        "the access log)",
    )
    group.add_argument(
        "--log-format",
        default="text",
        metavar="FORMAT",
        help="text (default) or json: one JSON object per line, start-up lines included",
    )
    group.add_argument(
        "--log-config",
        metavar="FILE",
        help="a logging dictConfig as JSON (.json) or TOML (.toml); it decides handlers, "
        "formats and levels (--no-access-log still applies)",
    )
    group.add_argument(
        "--metrics-address",
        metavar="HOST:PORT",
        help="serve Prometheus /metrics and a /health check over plain HTTP there (never on "
        "the TLS port; no client certificate needed)",
    )


#: Timeouts' fields (but ``app``, below): help ({} = default); flags from mutls.server.flags.
TIMEOUT_OPTIONS = {
    "handshake": "seconds to finish the TLS handshake (default {:g})",
    "header": "seconds to send a request head, then 408; also between parts of a body "
    "(default {:g})",
    "keep_alive": "seconds an idle kept-alive connection stays open (default {:g})",
    "graceful": "seconds requests in flight may take after SIGTERM, or in an old worker after a "
    "reload (default {:g})",
    "send": "seconds a client may read nothing of a response that fills the socket buffer, "
    "then the connection is dropped (default {:g})",
}
#: HTTPLimits' fields: metavar, help.
LIMIT_OPTIONS = {
    "max_head_bytes": (
        "BYTES",
        "request line + headers larger than this are answered 431 (default {})",
    ),
    "max_headers": ("N", "more header fields are answered 431 (default {})"),
    "max_body_bytes": (
        "BYTES",
        "larger request bodies are answered 413; bodies are read whole (default {})",
    ),
    "min_chunk_average": (
        "BYTES",
        f"a chunked body may have {FREE_CHUNKS} chunks, plus one per BYTES of body; more are "
        "answered 400 (default {}; 0: no limit)",
    ),
}
#: H2Limits' fields: help (the window is H2Limits.window_seconds).
H2_LIMIT_OPTIONS = {
    "max_concurrent_streams": "HTTP/2 streams a connection may have open "
    "(SETTINGS_MAX_CONCURRENT_STREAMS), or whose app still runs (default {})",
    "max_resets": "HTTP/2 streams a connection may reset in 10 s (rapid reset), then GOAWAY "
    "ENHANCE_YOUR_CALM (default {})",
    "max_control_frames": "HTTP/2 SETTINGS, PING, PRIORITY and empty frames a connection may "
    "send in 10 s, then GOAWAY ENHANCE_YOUR_CALM (default {})",
}
_SIZE = re.compile(r"(\d+)\s*([kmg]?)(?:i?b)?", re.IGNORECASE)
_MULTIPLIERS = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30}


def size(text: str) -> int:
    """A byte count: ``65536``, ``64k``, ``16M``, ``1GiB`` (binary multiples)."""
    match = _SIZE.fullmatch(text.strip())
    if match is None:
        raise argparse.ArgumentTypeError(f"not a size: {text!r} (e.g. 65536, 64k, 16M)")
    return int(match[1]) * _MULTIPLIERS[match[2].lower()]


def add_limit_options(parser: argparse.ArgumentParser) -> None:
    """Timeouts and limits, showing ``ServerConfig``'s defaults (it validates the values)."""
    timeouts, limits = Timeouts(), HTTPLimits()
    group = parser.add_argument_group("limits and timeouts")
    flags = group_flags("timeouts")
    for name, text in TIMEOUT_OPTIONS.items():
        default = getattr(timeouts, name)
        group.add_argument(flags[name], type=float, metavar="SECONDS", help=text.format(default))
    group.add_argument(
        flags["app"],
        type=float,
        metavar="SECONDS",
        help="seconds the app may go without output: before its response starts (then 504) "
        "or between its parts (then the connection is cut); time waiting for a slow client "
        "does not count; a WSGI thread past it is abandoned "
        f"(default {timeouts.app:g}; 0: no limit)",
    )
    group.add_argument(
        FLAGS["tls_options.max_client_chain"],
        type=size,
        metavar="BYTES",
        help="the largest certificate list a client may send; a longer one fails the "
        f"handshake (default {TLSOptions().max_client_chain})",
    )
    group.add_argument(
        "--max-connections",
        type=int,
        metavar="N",
        help="open connections per process; more are closed at once "
        f"(default {_default('max_connections')})",
    )
    group.add_argument(
        FLAGS["max_failures_per_source"],
        type=int,
        metavar="N",
        help="failed connections an address (IPv6: its /64) may have in 10 s: handshakes "
        "refused or timed out, requests refused as malformed or over a limit, heads or bodies "
        "too slow; past that, its new connections are held 1 s unread, then closed, until it "
        "is back under (trusted proxies exempt; per worker; 0: no budget; "
        f"default {_default('max_failures_per_source')})",
    )
    flags = group_flags("limits")
    for name, (metavar, text) in LIMIT_OPTIONS.items():
        group.add_argument(
            flags[name],
            type=size if metavar == "BYTES" else int,
            metavar=metavar,
            help=text.format(getattr(limits, name)),
        )
    h2_limits = H2Limits()
    flags = group_flags("h2_limits")
    for name, text in H2_LIMIT_OPTIONS.items():
        group.add_argument(
            flags[name], type=int, metavar="N", help=text.format(getattr(h2_limits, name))
        )
    add_websocket_options(parser)


#: WebSocketLimits' fields: metavar (it gives the type), help ({} = default).
WEBSOCKET_OPTIONS = {
    "max_message_bytes": (
        "BYTES",
        "a larger WebSocket message closes the WebSocket with 1009 (default {})",
    ),
    "max_queue": (
        "N",
        "WebSocket messages received and not yet taken by the app; then the socket is not "
        "read until it takes one (default {})",
    ),
    "ping_interval": (
        "SECONDS",
        "seconds between the server's pings on an open WebSocket (default {:g}; 0: no pings)",
    ),
    "ping_timeout": (
        "SECONDS",
        "seconds for the pong to come back, else the WebSocket closes with 1011 (default {:g})",
    ),
    "close_timeout": (
        "SECONDS",
        "seconds the server's close waits for the client's before the connection is "
        "dropped (default {:g})",
    ),
}


def add_websocket_options(parser: argparse.ArgumentParser) -> None:
    """The WebSocket limits (per-message deflate is never negotiated: docs/server.md)."""
    defaults = WebSocketLimits()
    group = parser.add_argument_group("WebSocket (ASGI apps)")
    flags = group_flags("websocket")
    for name, (metavar, text) in WEBSOCKET_OPTIONS.items():
        kinds: dict[str, Callable[[str], Any]] = {"BYTES": size, "N": int, "SECONDS": float}
        kind = kinds[metavar]
        group.add_argument(
            flags[name], type=kind, metavar=metavar, help=text.format(getattr(defaults, name))
        )


def websocket_from_args(args: argparse.Namespace) -> WebSocketLimits:
    """``ServerConfig.websocket`` from the WebSocket flags that were given."""
    values = _given(args, "websocket")
    if values.get("ping_interval") == 0:
        values["ping_interval"] = None
    return replace(WebSocketLimits(), **values)


def _given(args: argparse.Namespace, group: str) -> dict[str, Any]:
    """The fields of one of ``ServerConfig``'s groups whose flags were given."""
    given = {
        name: getattr(args, flag[2:].replace("-", "_"), None)
        for name, flag in group_flags(group).items()
    }
    return {name: value for name, value in given.items() if value is not None}


def _default(name: str) -> object:
    """A ``ServerConfig`` default, for the help (one source for both)."""
    return ServerConfig.__dataclass_fields__[name].default


def limits_from_args(args: argparse.Namespace) -> dict[str, Any]:
    """``ServerConfig`` keywords for the limit and timeout flags that were given."""
    timeouts = _given(args, "timeouts")
    if timeouts.get("app") == 0:
        timeouts["app"] = None
    config: dict[str, Any] = {
        "timeouts": replace(Timeouts(), **timeouts),
        "limits": replace(HTTPLimits(), **_given(args, "limits")),
        "websocket": websocket_from_args(args),
        "h2_limits": replace(H2Limits(), **_given(args, "h2_limits")),
    }
    if getattr(args, "http", None) is not None:
        config["http"] = HTTPVersions(args.http)
    for dest in ("max_connections", "max_failures_per_source", "threads", "thread_queue"):
        if getattr(args, dest, None) is not None:
            config[dest] = getattr(args, dest)
    return config


_HTTPS_HELP = {
    "https": "HTTPS without client certificates",
    "https_client_accept": "HTTPS; accept a client certificate if sent (policy report)",
    "https_client_require": "HTTPS; require a client certificate (policy report)",
}


def resolve_modes(args: argparse.Namespace) -> tuple[bool, ClientCertMode, VerifyPolicy]:
    """(TLS on, client-certificate mode, policy) from the flags, per the table above."""
    https = [(flag, mode) for dest, (flag, mode) in HTTPS_FLAGS.items() if getattr(args, dest)]
    if len(https) > 1:
        raise UsageError(f"{https[0][0]} and {https[1][0]} contradict each other: give one")
    if args.p12 and args.cert:
        raise UsageError("--p12file and --cert contradict each other: give one certificate")
    if args.key and not args.cert:
        raise UsageError("--pkfile/--key needs --cert (a P12 holds its own key)")
    has_cert = bool(args.p12 or args.cert)
    if https and not has_cert:
        raise UsageError(
            f"{https[0][0]} needs the server's certificate: --p12file FILE or --cert FILE"
        )
    chosen = ClientCertMode(args.client_cert) if args.client_cert else None
    if not has_cert:
        # ServerConfig refuses the settings that need TLS; these two it cannot tell from their
        # defaults, so the CLI, which saw them typed, refuses them the same way.
        if args.forwarded_cert_header:  # the proxy terminates TLS; mutls judges what it forwards
            mode = chosen or ClientCertMode.OPTIONAL
            return False, mode, VerifyPolicy(args.verify) if args.verify else VerifyPolicy.STRICT
        for flag, typed in (
            (FLAGS["client_cert"], chosen is ClientCertMode.NONE),
            (FLAGS["verify"], args.verify is not None),
        ):
            if typed:
                raise UsageError(needs_tls(flag))
        return False, chosen or ClientCertMode.NONE, VerifyPolicy.STRICT
    if https:
        flag, mode = https[0]
        if chosen is not None and chosen is not mode:
            raise UsageError(
                f"{flag} and --client-cert {chosen.value} contradict each other: give one"
            )
        policy = VerifyPolicy.REPORT
    else:
        mode = chosen or ClientCertMode.NONE
        policy = VerifyPolicy.STRICT
    if args.verify:
        policy = VerifyPolicy(args.verify)
    return True, mode, policy


def load_identity(args: argparse.Namespace) -> Identity:
    """The server's identity from --p12file or --cert/--pkfile, with its password."""
    return identity_and_password(args)[0]


class _AtStart:
    """No password kept yet: resolve it now (and ask on a terminal when needed)."""


_AT_START = _AtStart()


def identity_and_password(
    args: argparse.Namespace, kept: str | _AtStart | None = _AT_START
) -> tuple[Identity, str | None]:
    """The identity and the password that opened it. ``kept`` is that password on a reload:
    no prompt then, and ``--pkpwd-file`` is read again (a rotation may change it too)."""
    path = args.p12 or args.cert

    def read(password: str | None) -> Identity:
        if args.p12:
            return Identity.from_p12(path, password)
        return Identity.from_pem(args.cert, args.key, password)

    if not isinstance(kept, _AtStart):
        password = password_from(args, args.pkpwd, None) if args.pass_file else kept
        return read(password), password
    password = password_from(args, args.pkpwd, None)
    try:
        return read(password), password
    except WrongPasswordError as exc:
        if password is None and sys.stdin is not None and sys.stdin.isatty():
            prompted = password_from(args, None, f"Password for {path}: ")
            return read(prompted), prompted
        hint = "" if "--pkpwd" in str(exc) else " (give it with --pkpwd or --pkpwd-file)"
        raise WrongPasswordError(f"{exc}{hint}") from None


def config_from_args(
    args: argparse.Namespace,
    *,
    app: str | None = None,
    password: str | _AtStart | None = _AT_START,
) -> ServerConfig:
    """One validated :class:`ServerConfig` from parsed options.

    Its ``reload_source`` makes it again from the same options and the files they name, with
    the password given at start (``password``: that password, on a reload).
    """
    tls, mode, policy = resolve_modes(args)
    identity, password = identity_and_password(args, password) if tls else (None, None)
    sources = [args.p12, args.cert, args.key, args.pass_file, getattr(args, "allow", None)]
    return ServerConfig(
        host=None if args.address in ("*", "") else args.address,
        port=args.port,
        identity=identity,
        client_cert=mode,
        verify=policy,
        client_ca_files=tuple(args.client_ca or ()),
        crl_files=tuple(args.crl or ()),
        machine_store=args.machine_store,
        tls_options=tls_options_from_args(args),
        app=app,
        app_dir=getattr(args, "app_dir", "."),
        root=args.root,
        workers=getattr(args, "workers", 1),
        pidfile=args.pidfile,
        verbose=args.verbose,
        trusted_proxies=split_peers(args.trusted_proxy or ()),
        access_log=args.access_log,
        log_level=args.log_level.lower() if args.log_level else None,
        log_format=args.log_format.lower(),
        log_config=args.log_config,
        metrics_address=args.metrics_address,
        forwarded_cert_header=args.forwarded_cert_header,
        access=access_from_args(args),
        proxy_headers=args.proxy_headers,
        proxy_protocol=args.proxy_protocol,
        fds=tuple(args.fd or ()),
        ticket_key_files=tuple(args.ticket_key_file or ()),
        reload_on_change=args.reload_on_change,
        source_files=tuple(path for path in sources if path),
        reload_source=functools.partial(config_from_args, args, app=app, password=password),
        **limits_from_args(args),
    )


def tls_options_from_args(args: argparse.Namespace) -> TLSOptions:
    """``ServerConfig.tls_options`` from the TLS tuning flags."""
    chain = getattr(args, "max_client_chain", None)
    return TLSOptions(
        send_ca_names=not args.no_ca_names,
        ciphers=args.ciphers,
        tls13_ciphers=args.tls13_ciphers,
        reject_at_handshake=args.reject_at_handshake,
        keylog_path=args.keylog,
        **({} if chain is None else {"max_client_chain": chain}),
    )


def access_from_args(args: argparse.Namespace) -> Access | None:
    """``--allow FILE`` (read and checked now) and ``--remote-user``, if given."""
    allow, user = getattr(args, "allow", None), getattr(args, "remote_user", None)
    if allow is None and user is None:
        return None
    return Access(
        AllowRules.load(allow) if allow is not None else None,
        UserName.parse(user) if user is not None else None,
    )


def serve(config: ServerConfig, *, nonstop: bool) -> int:
    """Run the server until a signal (or Return, as XSP, unless ``nonstop``)."""
    from mutls.server.log import configure_logging, read_log_config, startup_log

    configure_logging(
        level=config.effective_log_level,
        fmt=config.log_format,
        config=read_log_config(config.log_config) if config.log_config else None,
        config_path=config.log_config,
        access=config.access_log,
    )
    if config.log_format == "json" and config.log_config is None:
        try:
            return _serve(config, nonstop=nonstop)
        except MutlsError as exc:  # a port in use, an app that fails: one JSON line too
            details = getattr(exc, "details", None)
            startup_log.error("%s", exc, extra={"mutls": {"details": details} if details else {}})
            raise SystemExit(exc.exit_code) from None
    return _serve(config, nonstop=nonstop)


def _serve(config: ServerConfig, *, nonstop: bool) -> int:
    from mutls.server.log import startup_log
    from mutls.server.server import Server, run
    from mutls.server.workers import run_workers

    if hasattr(signal, "SIGHUP"):  # one before the server takes it over would end the process
        signal.signal(signal.SIGHUP, signal.SIG_IGN)
    if config.workers > 1:
        return run_workers(config)

    def on_ready(server: Server) -> None:
        if nonstop or sys.stdin is None or not sys.stdin.isatty():
            return
        startup_log.info("hit Return to stop the server.")
        loop = asyncio.get_running_loop()

        def wait_for_return() -> None:
            try:
                sys.stdin.readline()
            finally:
                loop.call_soon_threadsafe(server.request_stop)

        threading.Thread(target=wait_for_return, daemon=True).start()

    return run(config, on_ready=on_ready)


def build_parser() -> ArgumentParser:
    """``mutls serve``'s options."""
    parser = ArgumentParser(prog="mutls serve", description=HELP)
    parser.add_argument(
        "app", nargs="?", metavar="APP", help="module:attribute of a WSGI or ASGI app"
    )
    parser.add_argument("--app-dir", default=".", help="import APP from DIR (default: .)")
    parser.add_argument(
        "--factory",
        action="store_true",
        help="APP is a function that returns the app (called once, with no arguments); "
        "or write APP as module:create_app()",
    )
    add_server_options(parser, default_address="127.0.0.1")
    who = parser.add_argument_group("who may call (with --client-cert optional or require)")
    who.add_argument(
        "--allow",
        metavar="FILE",
        help="admit only valid certificates that a rule of FILE allows (TOML [[allow]] "
        "tables: subject, SAN, SPIFFE ID, issuer, key or fingerprint; see docs/server.md); "
        "strict: others get 403, report: the app sees MUTLS_AUTHORIZATION",
    )
    who.add_argument(
        "--remote-user",
        metavar="FROM",
        help="set REMOTE_USER from a valid certificate: cn, email, subject, dns, uri or spiffe "
        "(Apache's SSLUserName)",
    )
    parser.add_argument(
        "--workers",
        type=int,
        default=1,
        help="worker processes (default 1); SIGHUP starts a new generation of them with "
        "everything read again, and the old one finishes its requests and exits",
    )
    wsgi = parser.add_argument_group("WSGI apps")
    wsgi.add_argument(
        "--threads",
        type=int,
        metavar="N",
        help=f"threads running the app, per worker (default {_default('threads')})",
    )
    wsgi.add_argument(
        "--thread-queue",
        type=int,
        metavar="N",
        help="requests that may wait for a thread; more are answered 503 with Retry-After "
        "(default: as many as --threads)",
    )
    return parser


def main(argv: Sequence[str]) -> int:
    """``mutls serve``."""
    args = build_parser().parse_args(list(argv))
    # Stopping on Return is XSP's habit (``mutls xsp``); ``serve`` stops on Ctrl-C or SIGTERM.
    app = args.app
    if args.factory:
        if app is None:
            raise UsageError("--factory needs APP: the function that makes the app")
        if not app.endswith(")"):
            app += "()"  # the one spelling of "call it" the loader knows
    return serve(config_from_args(args, app=app), nonstop=True)
