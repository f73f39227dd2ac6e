"""The command-line flag of each ``ServerConfig`` setting, in one table.

The CLI makes its options from it (``mutls serve``, ``mutls xsp``) and ``ServerConfig`` names a
refused value by it, so the help and the errors cannot drift apart. A key is a setting's name in
``ServerConfig``, or ``group.field`` for a setting inside one of its groups (``timeouts``,
``limits``, ``h2_limits``, ``websocket``).
"""

from __future__ import annotations

FLAGS: dict[str, str] = {
    # client certificates and TLS (TLS_ONLY below: the order they are named in when refused)
    "client_cert": "--client-cert",
    "client_ca_files": "--client-ca",
    "crl_files": "--crl",
    "tls_options.send_ca_names": "--no-ca-names",
    "tls_options.ciphers": "--ciphers",
    "tls_options.tls13_ciphers": "--tls13-ciphers",
    "tls_options.reject_at_handshake": "--reject-at-handshake",
    "tls_options.keylog_path": "--keylog",
    "ticket_key_files": "--ticket-key-file",
    "verify": "--verify",
    "tls_options.max_client_chain": "--max-client-chain",
    "max_failures_per_source": "--max-failures-per-source",
    # Timeouts (uvicorn's names where it has the setting)
    "timeouts.handshake": "--timeout-handshake",
    "timeouts.header": "--timeout-header",
    "timeouts.keep_alive": "--timeout-keep-alive",
    "timeouts.graceful": "--timeout-graceful-shutdown",
    "timeouts.send": "--timeout-send",
    "timeouts.app": "--app-timeout",
    # HTTPLimits
    "limits.max_head_bytes": "--max-header-size",
    "limits.max_headers": "--max-headers",
    "limits.max_body_bytes": "--max-body-size",
    "limits.min_chunk_average": "--min-chunk-average",
    # H2Limits
    "h2_limits.max_concurrent_streams": "--h2-max-streams",
    "h2_limits.max_resets": "--h2-max-resets",
    "h2_limits.max_control_frames": "--h2-max-control-frames",
    # WebSocketLimits (uvicorn's names)
    "websocket.max_message_bytes": "--ws-max-size",
    "websocket.max_queue": "--ws-max-queue",
    "websocket.ping_interval": "--ws-ping-interval",
    "websocket.ping_timeout": "--ws-ping-timeout",
    "websocket.close_timeout": "--ws-close-timeout",
}

#: the settings that need TLS; behind a proxy that forwards certificates, the ones that judge
#: the forwarded certificate are allowed without it.
TLS_ONLY = (
    "client_cert",
    "client_ca_files",
    "crl_files",
    "tls_options.send_ca_names",
    "tls_options.ciphers",
    "tls_options.tls13_ciphers",
    "tls_options.reject_at_handshake",
    "tls_options.keylog_path",
    "ticket_key_files",
)
JUDGE_FORWARDED = ("client_cert", "client_ca_files", "crl_files")


def group_flags(group: str) -> dict[str, str]:
    """``{field: flag}`` of one of ``ServerConfig``'s groups, in the table's order."""
    prefix = f"{group}."
    return {key[len(prefix) :]: flag for key, flag in FLAGS.items() if key.startswith(prefix)}


def needs_tls(flag: str, *, behind_proxy: bool = False) -> str:
    """The one message for a TLS-only flag given without a certificate."""
    if behind_proxy:
        return f"{flag} needs TLS, which --trusted-proxy leaves to the proxy"
    return f"{flag} needs TLS, which needs a certificate (--p12file FILE or --cert FILE)"
