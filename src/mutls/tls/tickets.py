"""Session-ticket keys the server chooses, shared by every worker, generation and machine.

OpenSSL makes random ticket keys per ``SSL_CTX``; a reload builds a new context, and two
machines never share one, so a ticket would not resume across either. :class:`TicketKeys` are
made once (random, or read from ``--ticket-key-file`` files) and given to every context, which
encrypts and decrypts tickets with them through ``SSL_CTX_set_tlsext_ticket_key_evp_cb``.

The files are nginx's ``ssl_session_ticket_key`` format, so one key serves a mixed fleet:

- 80 bytes: name (16), HMAC-SHA256 key (32), AES-256-CBC key (32);
- 48 bytes: name (16), AES-128-CBC key (16), HMAC-SHA256 key (16).

The first key encrypts new tickets; every key decrypts, and a ticket under another than the
first is accepted and renewed under the first (as is every TLS 1.3 ticket, as nginx does).
What a ticket may then resume is still decided by :mod:`mutls.tls.context` (the chain hint)
and judged again by :mod:`mutls.tls.verify`: the keys only decide who can read a ticket,
never what its certificate is worth.
"""

from __future__ import annotations

import os
import stat
import weakref
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from mutls.errors import UsageError
from mutls.tls import _openssl
from mutls.tls._openssl import ffi, lib

#: ``SSL_CTX_set_tlsext_ticket_key_evp_cb``'s key name: 16 bytes (the man page's
#: ``key_name[16]``; OpenSSL's ``TLSEXT_KEYNAME_LENGTH`` is internal, in no public header, so
#: it is not one of the door's constants, which a test checks against the headers).
NAME = 16
FILE_SIZES = (80, 48)


@dataclass(frozen=True, repr=False)
class TicketKey:
    """One key: its public name (in every ticket it makes), HMAC and AES keys."""

    name: bytes
    hmac_key: bytes
    aes_key: bytes

    @classmethod
    def from_bytes(cls, data: bytes, where: str = "the key") -> TicketKey:
        """Parse nginx's 80- or 48-byte form."""
        if len(data) == 80:
            return cls(data[:16], data[16:48], data[48:80])
        if len(data) == 48:
            return cls(data[:16], data[32:48], data[16:32])
        raise UsageError(
            f"--ticket-key-file {where}: {len(data)} bytes, must be 80 (or nginx's older 48); "
            "make one with `openssl rand 80 > ticket.key`"
        )

    @classmethod
    def random(cls) -> TicketKey:
        """A new random 80-byte key."""
        return cls.from_bytes(os.urandom(80))

    def __repr__(self) -> str:  # never the secret halves
        return f"TicketKey(name={self.name.hex()})"


@dataclass(frozen=True)
class TicketKeys:
    """The keys every context uses: the first encrypts, all decrypt.

    ``files`` are where they were read from (empty: random, made once at start).
    """

    keys: tuple[TicketKey, ...]
    files: tuple[str, ...] = ()

    @classmethod
    def random(cls) -> TicketKeys:
        """One random key, for a server without ``--ticket-key-file``."""
        return cls((TicketKey.random(),))

    @classmethod
    def load(cls, paths: Sequence[str]) -> TicketKeys:
        """Read ``--ticket-key-file`` files (regular files of 80 or 48 bytes)."""
        if not paths:
            raise UsageError("--ticket-key-file: no file given")
        return cls(tuple(_read_key(path) for path in paths), tuple(paths))

    def find(self, name: bytes) -> int | None:
        """The index of the key called ``name`` (``None``: a ticket nobody here can read)."""
        for index, key in enumerate(self.keys):
            if key.name == name:
                return index
        return None


def file_warnings(paths: Sequence[str]) -> list[str]:
    """Key files that others than their owner may read (nginx does not check; we say so)."""
    found = []
    for path in paths:
        try:
            mode = os.stat(path).st_mode
        except OSError:
            continue
        if mode & (stat.S_IRGRP | stat.S_IROTH):
            found.append(
                f"--ticket-key-file {path} is readable by "
                f"{'everyone' if mode & stat.S_IROTH else 'its group'}: whoever reads it can "
                "decrypt the sessions of every client (chmod 600 it)"
            )
    return found


def _read_key(path: str) -> TicketKey:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError as exc:
        raise UsageError(f"--ticket-key-file {path}: {exc.strerror}") from None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise UsageError(f"--ticket-key-file {path}: not a regular file")
        data = os.read(fd, 81)
    except OSError as exc:
        raise UsageError(f"--ticket-key-file {path}: {exc.strerror}") from None
    finally:
        os.close(fd)
    return TicketKey.from_bytes(data, path)


# -- the OpenSSL side: one callback for every context, keys found by the context -------------

_KEYS: dict[int, TicketKeys] = {}
_DIGEST = ffi.new("char[]", b"SHA256")
_KEY_PARAM = ffi.new("char[]", b"key")
_DIGEST_PARAM = ffi.new("char[]", b"digest")
_UNMODIFIED = int(ffi.cast("size_t", -1))


def install(ctx: Any, keys: TicketKeys, owner: object) -> None:
    """Make ``ctx`` (an ``SSL_CTX *``, freed with ``owner``) encrypt and decrypt its tickets
    with ``keys``."""
    address = int(ffi.cast("uintptr_t", ctx))
    _KEYS[address] = keys
    weakref.finalize(owner, _forget, address, keys)
    if lib.SSL_CTX_set_tlsext_ticket_key_evp_cb(ctx, _TICKET_KEY_CALLBACK) != 1:
        _openssl.errors()
        raise _openssl.OpenSSLUnavailable("OpenSSL refused the session-ticket key callback")


def _forget(address: int, keys: TicketKeys) -> None:
    if _KEYS.get(address) is keys:  # not a newer context's at the same address
        del _KEYS[address]


def _on_ticket_key(
    ssl: Any, name: Any, iv: Any, cipher_ctx: Any, mac_ctx: Any, encrypt: int
) -> int:
    """OpenSSL's ticket-key callback: 1 (use), 2 (use, and issue a new ticket), 0 (no such
    key: the client makes a full handshake), -1 (error)."""
    keys = _KEYS.get(int(ffi.cast("uintptr_t", lib.SSL_get_SSL_CTX(ssl))))
    if keys is None:
        return -1
    if encrypt:
        index = 0
        key = keys.keys[0]
        if lib.RAND_bytes(iv, _openssl.EVP_MAX_IV_LENGTH) != 1:
            _openssl.errors()
            return -1
        ffi.memmove(name, key.name, NAME)
    else:
        found = keys.find(bytes(ffi.buffer(name, NAME)))
        if found is None:
            return 0
        index, key = found, keys.keys[found]
    cipher = lib.EVP_aes_256_cbc() if len(key.aes_key) == 32 else lib.EVP_aes_128_cbc()
    init = lib.EVP_EncryptInit_ex if encrypt else lib.EVP_DecryptInit_ex
    hmac_key = ffi.new("unsigned char[]", key.hmac_key)
    params = ffi.new("OSSL_PARAM[3]")
    params[0].key = _KEY_PARAM
    params[0].data_type = _openssl.OSSL_PARAM_OCTET_STRING
    params[0].data = hmac_key
    params[0].data_size = len(key.hmac_key)
    params[0].return_size = _UNMODIFIED
    params[1].key = _DIGEST_PARAM
    params[1].data_type = _openssl.OSSL_PARAM_UTF8_STRING
    params[1].data = _DIGEST
    params[1].data_size = len(b"SHA256")
    params[1].return_size = _UNMODIFIED
    # params[2] stays zeroed: OSSL_PARAM_END
    if (
        init(cipher_ctx, cipher, ffi.NULL, key.aes_key, iv) != 1
        or lib.EVP_MAC_CTX_set_params(mac_ctx, params) != 1
    ):
        _openssl.errors()
        return -1
    # Renewed: a ticket under an older key, and every TLS 1.3 ticket (a TLS 1.3 client uses a
    # ticket once, so it needs a new one from each resumption to resume the next time).
    renew = not encrypt and (index > 0 or lib.SSL_version(ssl) == _openssl.TLS1_3_VERSION)
    return 2 if renew else 1


def _log_callback_error(kind: type[BaseException], value: BaseException, _tb: Any) -> None:
    from mutls.server.log import log

    log.error("TLS ticket-key callback failed: %s: %s", kind.__name__, value)


_TICKET_KEY_CALLBACK = ffi.callback(
    "int (*)(SSL *, unsigned char *, unsigned char *, EVP_CIPHER_CTX *, EVP_MAC_CTX *, int)",
    _on_ticket_key,
    error=-1,
    onerror=_log_callback_error,
)
