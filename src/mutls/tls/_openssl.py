"""The one door to OpenSSL for the server's TLS engine: the OpenSSL of Python's own ``ssl``.

mutls's server talks to the ``libssl`` that CPython's ``_ssl`` module is linked against (on
Debian, the system's ``libssl.so.3``; in python.org builds for macOS and Windows, the copy that
ships beside Python), through cffi in ABI mode: no compiler, no headers, and the OpenSSL that
gets its security updates with the operating system or with Python, as nginx's and uvicorn's
do. Why not pyOpenSSL's bindings (they remain the client side's): the wheel's OpenSSL exports
nothing, and pyOpenSSL declares only what it uses itself, which leaves out what a server that
judges client certificates needs (a verify callback for a chain checked outside a handshake,
ticket callbacks, the certificate-list cap, the session-cache size, the number of tickets).
docs/tls.md, "Why this binding", has the comparison and the measurements.

Every other module sees only :data:`lib` and :data:`ffi` with OpenSSL's own C names (macros
that are ``SSL_CTX_ctrl`` calls are functions here) and the helpers below; the declarations are
checked when this module is imported, and a missing library or symbol is one
:class:`OpenSSLUnavailable` line naming what is missing.
"""

from __future__ import annotations

import ctypes.util
import os
import sys
from collections.abc import Iterable, Sequence
from typing import Any

from cffi import FFI

from mutls.errors import MutlsError

#: the oldest OpenSSL whose API this module declares (``OpenSSL_version_num``).
MIN_VERSION = 0x30000000

_CDEF = """
typedef struct ssl_st SSL;
typedef struct ssl_ctx_st SSL_CTX;
typedef struct ssl_method_st SSL_METHOD;
typedef struct ssl_cipher_st SSL_CIPHER;
typedef struct ssl_session_st SSL_SESSION;
typedef struct bio_st BIO;
typedef struct bio_method_st BIO_METHOD;
typedef struct x509_st X509;
typedef struct X509_crl_st X509_CRL;
typedef struct x509_store_st X509_STORE;
typedef struct x509_store_ctx_st X509_STORE_CTX;
typedef struct X509_VERIFY_PARAM_st X509_VERIFY_PARAM;
typedef struct evp_pkey_st EVP_PKEY;
typedef struct stack_st OPENSSL_STACK;
typedef long time_t;
typedef struct evp_cipher_st EVP_CIPHER;
typedef struct evp_cipher_ctx_st EVP_CIPHER_CTX;
typedef struct evp_mac_ctx_st EVP_MAC_CTX;
typedef struct engine_st ENGINE;
struct ossl_param_st {
    const char *key;
    unsigned int data_type;
    void *data;
    size_t data_size;
    size_t return_size;
};
typedef struct ossl_param_st OSSL_PARAM;

unsigned long OpenSSL_version_num(void);
const char *OpenSSL_version(int);

const SSL_METHOD *TLS_server_method(void);
SSL_CTX *SSL_CTX_new(const SSL_METHOD *);
void SSL_CTX_free(SSL_CTX *);
long SSL_CTX_ctrl(SSL_CTX *, int, long, void *);
uint64_t SSL_CTX_set_options(SSL_CTX *, uint64_t);
void SSL_CTX_set_security_level(SSL_CTX *, int);
int SSL_CTX_get_security_level(const SSL_CTX *);
int SSL_CTX_use_certificate(SSL_CTX *, X509 *);
int SSL_CTX_use_PrivateKey(SSL_CTX *, EVP_PKEY *);
int SSL_CTX_check_private_key(const SSL_CTX *);
int SSL_CTX_set_cipher_list(SSL_CTX *, const char *);
int SSL_CTX_set_ciphersuites(SSL_CTX *, const char *);
int SSL_CTX_set_session_id_context(SSL_CTX *, const unsigned char *, unsigned int);
long SSL_CTX_set_timeout(SSL_CTX *, long);
int SSL_CTX_set_num_tickets(SSL_CTX *, size_t);
void SSL_CTX_set_verify(SSL_CTX *, int, int (*)(int, X509_STORE_CTX *));
void SSL_CTX_set_cert_verify_callback(SSL_CTX *, int (*)(X509_STORE_CTX *, void *), void *);
X509_STORE *SSL_CTX_get_cert_store(const SSL_CTX *);
void SSL_CTX_set1_cert_store(SSL_CTX *, X509_STORE *);
int SSL_CTX_add_client_CA(SSL_CTX *, X509 *);
void SSL_CTX_set_alpn_select_cb(SSL_CTX *,
    int (*)(SSL *, const unsigned char **, unsigned char *, const unsigned char *,
            unsigned int, void *), void *);
void SSL_CTX_set_keylog_callback(SSL_CTX *, void (*)(const SSL *, const char *));
void SSL_CTX_set_info_callback(SSL_CTX *, void (*)(const SSL *, int, int));
int SSL_CTX_set_session_ticket_cb(SSL_CTX *, int (*)(SSL *, void *),
    int (*)(SSL *, SSL_SESSION *, const unsigned char *, size_t, int, void *), void *);
int SSL_SESSION_set1_ticket_appdata(SSL_SESSION *, const void *, size_t);
int SSL_SESSION_get0_ticket_appdata(SSL_SESSION *, void **, size_t *);
SSL_SESSION *SSL_get_session(const SSL *);
int SSL_CTX_set_tlsext_ticket_key_evp_cb(SSL_CTX *,
    int (*)(SSL *, unsigned char *, unsigned char *, EVP_CIPHER_CTX *, EVP_MAC_CTX *, int));
SSL_CTX *SSL_get_SSL_CTX(const SSL *);
int SSL_version(const SSL *);
int RAND_bytes(unsigned char *, int);
const EVP_CIPHER *EVP_aes_128_cbc(void);
const EVP_CIPHER *EVP_aes_256_cbc(void);
int EVP_EncryptInit_ex(EVP_CIPHER_CTX *, const EVP_CIPHER *, ENGINE *,
    const unsigned char *, const unsigned char *);
int EVP_DecryptInit_ex(EVP_CIPHER_CTX *, const EVP_CIPHER *, ENGINE *,
    const unsigned char *, const unsigned char *);
int EVP_MAC_CTX_set_params(EVP_MAC_CTX *, const OSSL_PARAM *);

SSL *SSL_new(SSL_CTX *);
void SSL_free(SSL *);
long SSL_ctrl(SSL *, int, long, void *);
void SSL_set_accept_state(SSL *);
void SSL_set_bio(SSL *, BIO *, BIO *);
int SSL_do_handshake(SSL *);
int SSL_read(SSL *, void *, int);
int SSL_write(SSL *, const void *, int);
int SSL_get_error(const SSL *, int);
int SSL_shutdown(SSL *);
void SSL_set_shutdown(SSL *, int);
int SSL_session_reused(const SSL *);
const char *SSL_get_version(const SSL *);
const SSL_CIPHER *SSL_get_current_cipher(const SSL *);
const char *SSL_CIPHER_get_name(const SSL_CIPHER *);
OPENSSL_STACK *SSL_get_ciphers(const SSL *);
void SSL_get0_alpn_selected(const SSL *, const unsigned char **, unsigned int *);
const char *SSL_get_servername(const SSL *, const int);
X509 *SSL_get1_peer_certificate(const SSL *);
OPENSSL_STACK *SSL_get_peer_cert_chain(const SSL *);
OPENSSL_STACK *SSL_get0_verified_chain(const SSL *);
int SSL_get_ex_data_X509_STORE_CTX_idx(void);

const BIO_METHOD *BIO_s_mem(void);
BIO *BIO_new(const BIO_METHOD *);
int BIO_free(BIO *);
int BIO_write(BIO *, const void *, int);
int BIO_read(BIO *, void *, int);
size_t BIO_ctrl_pending(BIO *);

X509 *d2i_X509(X509 **, const unsigned char **, long);
int i2d_X509(X509 *, unsigned char **);
void X509_free(X509 *);
int X509_up_ref(X509 *);
X509_CRL *d2i_X509_CRL(X509_CRL **, const unsigned char **, long);
void X509_CRL_free(X509_CRL *);
EVP_PKEY *d2i_AutoPrivateKey(EVP_PKEY **, const unsigned char **, long);
void EVP_PKEY_free(EVP_PKEY *);
void CRYPTO_free(void *, const char *, int);

X509_STORE *X509_STORE_new(void);
void X509_STORE_free(X509_STORE *);
int X509_STORE_add_cert(X509_STORE *, X509 *);
int X509_STORE_add_crl(X509_STORE *, X509_CRL *);
int X509_STORE_set_flags(X509_STORE *, unsigned long);
int X509_STORE_set_purpose(X509_STORE *, int);
X509_STORE_CTX *X509_STORE_CTX_new(void);
void X509_STORE_CTX_free(X509_STORE_CTX *);
int X509_STORE_CTX_init(X509_STORE_CTX *, X509_STORE *, X509 *, OPENSSL_STACK *);
int X509_STORE_CTX_set_default(X509_STORE_CTX *, const char *);
void X509_STORE_CTX_set_verify_cb(X509_STORE_CTX *, int (*)(int, X509_STORE_CTX *));
X509_VERIFY_PARAM *X509_STORE_CTX_get0_param(const X509_STORE_CTX *);
void X509_VERIFY_PARAM_set_auth_level(X509_VERIFY_PARAM *, int);
int X509_verify_cert(X509_STORE_CTX *);
int X509_STORE_CTX_get_error(const X509_STORE_CTX *);
void X509_STORE_CTX_set_error(X509_STORE_CTX *, int);
int X509_STORE_CTX_get_error_depth(const X509_STORE_CTX *);
X509 *X509_STORE_CTX_get_current_cert(const X509_STORE_CTX *);
OPENSSL_STACK *X509_STORE_CTX_get0_chain(const X509_STORE_CTX *);
OPENSSL_STACK *X509_STORE_CTX_get0_untrusted(const X509_STORE_CTX *);
X509_STORE_CTX *X509_STORE_CTX_get0_parent_ctx(const X509_STORE_CTX *);
void X509_STORE_CTX_set0_untrusted(X509_STORE_CTX *, OPENSSL_STACK *);
void *X509_STORE_CTX_get_ex_data(const X509_STORE_CTX *, int);
const char *X509_verify_cert_error_string(long);

int OPENSSL_sk_num(const OPENSSL_STACK *);
void *OPENSSL_sk_value(const OPENSSL_STACK *, int);
OPENSSL_STACK *OPENSSL_sk_new_null(void);
int OPENSSL_sk_push(OPENSSL_STACK *, const void *);
void OPENSSL_sk_free(OPENSSL_STACK *);

unsigned long ERR_get_error(void);
void ERR_clear_error(void);
const char *ERR_reason_error_string(unsigned long);
"""

# -- the constants the engine uses (OpenSSL 3's headers; stable across 3.x) ------------------

TLS1_2_VERSION = 0x0303
TLS1_3_VERSION = 0x0304
SSL_CTRL_MODE = 33
SSL_CTRL_SET_SESS_CACHE_SIZE = 42
SSL_CTRL_SET_SESS_CACHE_MODE = 44
SSL_CTRL_SET_MAX_CERT_LIST = 51
SSL_CTRL_EXTRA_CHAIN_CERT = 14
SSL_CTRL_SET_MIN_PROTO_VERSION = 123
SSL_CTRL_SET_MAX_PROTO_VERSION = 124
SSL_CTRL_SET_DH_AUTO = 118
SSL_MODE_RELEASE_BUFFERS = 0x10
SSL_OP_NO_COMPRESSION = 1 << 17
SSL_OP_NO_TICKET = 1 << 14
SSL_OP_NO_RENEGOTIATION = 1 << 30
SSL_SESS_CACHE_SERVER = 0x2
SSL_VERIFY_NONE = 0
SSL_VERIFY_PEER = 1
SSL_VERIFY_FAIL_IF_NO_PEER_CERT = 2
SSL_ERROR_WANT_READ = 2
SSL_ERROR_ZERO_RETURN = 6
SSL_SENT_SHUTDOWN = 1
SSL_RECEIVED_SHUTDOWN = 2
SSL_TLSEXT_ERR_OK = 0
SSL_TLSEXT_ERR_NOACK = 3
SSL_TLSEXT_ERR_ALERT_FATAL = 2
TLSEXT_NAMETYPE_host_name = 0
SSL_CB_ALERT = 0x4000
SSL_CB_READ = 0x04
SSL_CB_WRITE = 0x08
SSL_CB_READ_ALERT = SSL_CB_ALERT | SSL_CB_READ
SSL_CB_WRITE_ALERT = SSL_CB_ALERT | SSL_CB_WRITE
#: ``SSL_CTX_set_session_ticket_cb``'s decrypt statuses and answers.
SSL_TICKET_SUCCESS = 5
SSL_TICKET_SUCCESS_RENEW = 6
SSL_TICKET_RETURN_IGNORE_RENEW = 2
SSL_TICKET_RETURN_USE = 3
SSL_TICKET_RETURN_USE_RENEW = 4
X509_PURPOSE_SSL_CLIENT = 1
X509_V_OK = 0
X509_V_FLAG_CRL_CHECK = 0x4
X509_V_FLAG_CRL_CHECK_ALL = 0x8
X509_V_FLAG_EXTENDED_CRL_SUPPORT = 0x1000
X509_V_FLAG_USE_DELTAS = 0x2000
OPENSSL_VERSION_TEXT = 0
#: ``SSL_CTX_set_tlsext_ticket_key_evp_cb``'s IV buffer (evp.h), which AES-CBC's IV fills.
EVP_MAX_IV_LENGTH = 16
#: ``OSSL_PARAM`` data types (core.h); params.h's ``OSSL_PARAM_UNMODIFIED`` is ``(size_t)-1``.
OSSL_PARAM_UTF8_STRING = 4
OSSL_PARAM_OCTET_STRING = 5


class OpenSSLUnavailable(MutlsError):
    """The OpenSSL library the server needs cannot be found or lacks a symbol."""


def _library_path() -> str:
    """Where the ``libssl`` of Python's own ``ssl`` module lives (``MUTLS_LIBSSL`` overrides)."""
    explicit = os.environ.get("MUTLS_LIBSSL")
    if explicit:
        return explicit
    import _ssl  # noqa: F401  (loads the library, so the process maps show where it is)

    if sys.platform.startswith("linux"):
        try:
            with open("/proc/self/maps", encoding="utf-8", errors="replace") as maps:
                for line in maps:
                    path = line.rsplit(" ", 1)[-1].strip()
                    if "/libssl.so" in path or "/libssl-" in path:
                        return path
        except OSError:
            pass
    found = ctypes.util.find_library("ssl")
    if found:
        return found
    raise OpenSSLUnavailable(
        "cannot find libssl (the OpenSSL of Python's ssl module); set MUTLS_LIBSSL to its path"
    )


def _open() -> tuple[FFI, Any]:
    ffi = FFI()
    ffi.cdef(_CDEF)
    path = _library_path()
    try:
        library = ffi.dlopen(path)
    except OSError as exc:
        reason = str(exc).split("  Additionally")[0].rsplit(": ", 1)[-1].rstrip(".")
        raise OpenSSLUnavailable(
            f"cannot load OpenSSL from {path} ({reason}); set MUTLS_LIBSSL to a libssl.so.3"
        ) from None
    try:
        version = int(library.OpenSSL_version_num())
    except AttributeError:
        raise OpenSSLUnavailable(f"{path} is not OpenSSL 3 (no OpenSSL_version_num)") from None
    if version < MIN_VERSION:
        raise OpenSSLUnavailable(
            f"{path} is OpenSSL {version:#x}; mutls's server needs OpenSSL 3.0 or newer"
        )
    missing = [name for name in _FUNCTIONS if not _has(library, name)]
    if missing:
        raise OpenSSLUnavailable(f"{path} lacks {', '.join(missing)}")
    return ffi, library


def _has(library: Any, name: str) -> bool:
    try:
        getattr(library, name)
    except AttributeError:
        return False
    return True


_FUNCTIONS = [
    line.split("(", 1)[0].split()[-1].lstrip("*")
    for line in _CDEF.splitlines()
    # a declaration's first line (continuations are indented), so wrapped ones are checked too
    if "(" in line and not line.startswith((" ", "typedef"))
]

ffi, lib = _open()
#: the library's own version line, for the start-up log and docs.
VERSION = ffi.string(lib.OpenSSL_version(OPENSSL_VERSION_TEXT)).decode("ascii", "replace")
STORE_CTX_SSL_INDEX = int(lib.SSL_get_ex_data_X509_STORE_CTX_idx())


# -- helpers every caller would otherwise repeat ------------------------------------------------


def errors() -> list[str]:
    """Drain this thread's OpenSSL error queue: the reasons, oldest first."""
    reasons: list[str] = []
    while True:
        code = lib.ERR_get_error()
        if code == 0:
            return reasons
        text = lib.ERR_reason_error_string(code)
        reasons.append(ffi.string(text).decode("ascii", "replace") if text else f"error {code:#x}")


def text(pointer: Any) -> str | None:
    """A C string as ``str`` (``None`` for NULL)."""
    return None if pointer == ffi.NULL else ffi.string(pointer).decode("ascii", "replace")


def verify_error_text(code: int) -> str:
    """OpenSSL's wording for a verification error code."""
    return text(lib.X509_verify_cert_error_string(code)) or f"verify error {code}"


def _decode(decode: Any, free: Any, der: bytes, what: str, *, secret: bool = False) -> Any:
    """``decode(NULL, &p, len)`` on ``der``: a new object freed by the garbage collector;
    raises ValueError naming ``what`` when OpenSSL cannot read it. ``secret``: wipe our
    copy of the bytes afterwards."""
    source = ffi.new("unsigned char[]", der)
    cursor = ffi.new("const unsigned char **", source)
    made = decode(ffi.NULL, cursor, len(der))
    if secret:
        ffi.memmove(source, b"\0" * len(der), len(der))
    if made == ffi.NULL:
        errors()
        raise ValueError(f"OpenSSL cannot read this {what}")
    return ffi.gc(made, free)


def x509_from_der(der: bytes) -> Any:
    """A new ``X509 *``; raises ValueError when OpenSSL cannot read ``der``."""
    return _decode(lib.d2i_X509, lib.X509_free, der, "certificate")


def x509_to_der(x509: Any) -> bytes:
    """The DER of an ``X509 *``."""
    out = ffi.new("unsigned char **")
    size = lib.i2d_X509(x509, out)
    if size <= 0:
        errors()
        raise ValueError("OpenSSL cannot encode this certificate")
    try:
        return bytes(ffi.buffer(out[0], size))
    finally:
        lib.CRYPTO_free(out[0], b"mutls", 0)


def crl_from_der(der: bytes) -> Any:
    """A new ``X509_CRL *``."""
    return _decode(lib.d2i_X509_CRL, lib.X509_CRL_free, der, "CRL")


def private_key_from_der(der: bytes) -> Any:
    """A new ``EVP_PKEY *`` from an unencrypted PKCS#8 DER (our copy is wiped)."""
    return _decode(lib.d2i_AutoPrivateKey, lib.EVP_PKEY_free, der, "private key", secret=True)


def stack_ders(stack: Any) -> tuple[bytes, ...]:
    """The DER of every ``X509 *`` in a ``STACK_OF(X509)`` (empty for NULL)."""
    if stack == ffi.NULL:
        return ()
    return tuple(
        x509_to_der(lib.OPENSSL_sk_value(stack, i)) for i in range(lib.OPENSSL_sk_num(stack))
    )


class X509Stack:
    """A ``STACK_OF(X509)`` of certificates from DERs (or ``X509 *``s already made) and,
    first, the items of ``before`` (another stack's); kept alive with its certificates."""

    def __init__(
        self, ders: Iterable[bytes] = (), *, made: Iterable[Any] = (), before: Any = None
    ) -> None:
        self.certs = [*made, *(x509_from_der(der) for der in ders)]
        self.ptr = ffi.gc(lib.OPENSSL_sk_new_null(), lib.OPENSSL_sk_free)
        if before is not None and before != ffi.NULL:
            for i in range(lib.OPENSSL_sk_num(before)):
                lib.OPENSSL_sk_push(self.ptr, lib.OPENSSL_sk_value(before, i))
        for cert in self.certs:
            lib.OPENSSL_sk_push(self.ptr, cert)


def names_of(stack: Any, name: Any) -> list[str]:
    """The names (``name(item)``) of every item of a stack, e.g. ciphers."""
    return [
        ffi.string(name(lib.OPENSSL_sk_value(stack, i))).decode("ascii")
        for i in range(lib.OPENSSL_sk_num(stack))
    ]


def set_flags_and_purpose(store: Any, flags: int) -> None:
    """Set verification flags and the ``sslclient`` purpose on an ``X509_STORE *``."""
    if flags:
        lib.X509_STORE_set_flags(store, flags)
    lib.X509_STORE_set_purpose(store, X509_PURPOSE_SSL_CLIENT)


def add_to_store(store: Any, certs: Sequence[bytes], crls: Sequence[bytes]) -> None:
    """Add certificates and CRLs (DER) to an ``X509_STORE *`` (each takes its own reference)."""
    for der in certs:
        lib.X509_STORE_add_cert(store, x509_from_der(der))
    for der in crls:
        lib.X509_STORE_add_crl(store, crl_from_der(der))
    errors()  # a duplicate certificate is "cert already in hash table": not an error here
