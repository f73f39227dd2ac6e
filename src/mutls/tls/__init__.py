"""The TLS engine: sans-I/O connections on OpenSSL (:mod:`mutls.tls._openssl`) that record why
a client certificate is or is not acceptable, instead of aborting the handshake."""

from mutls.tls._openssl import VERSION as OPENSSL_VERSION
from mutls.tls.client_certificate import ClientCertificate, SubjectAltNames
from mutls.tls.connection import PlainHTTPError, TLSConnection, TLSError
from mutls.tls.context import ServerContext, ServerTLSConfig
from mutls.tls.info import TLSInfo
from mutls.tls.options import ClientCertMode, TLSOptions, VerifyPolicy
from mutls.tls.policy import refusal_reason

__all__ = [
    "OPENSSL_VERSION",
    "ClientCertMode",
    "ClientCertificate",
    "PlainHTTPError",
    "ServerContext",
    "ServerTLSConfig",
    "SubjectAltNames",
    "TLSConnection",
    "TLSError",
    "TLSInfo",
    "TLSOptions",
    "VerifyPolicy",
    "refusal_reason",
]
