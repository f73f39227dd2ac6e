"""``TLSConnection``: one server-side TLS connection, sans-I/O, on pyOpenSSL memory BIOs.

Bytes from the socket go in with :meth:`TLSConnection.receive_data`, which drives the handshake
and returns the plaintext now readable; whatever must go to the socket comes out of
:meth:`TLSConnection.data_to_send` (call it after every other call, failures included: a failed
handshake leaves its alert there). The keep-alive path calls OpenSSL through pyOpenSSL's cffi
bindings directly: no exception per record, and reads stop as soon as the input BIO is empty,
which is most of the per-request cost of the pyOpenSSL convenience methods.
"""

from __future__ import annotations

import hashlib
import weakref
from collections.abc import Hashable

from OpenSSL import SSL, crypto
from OpenSSL._util import ffi as _ffi
from OpenSSL._util import lib as _lib

from mutls.tls.alerts import alert_name
from mutls.tls.ciphers import iana_cipher_id
from mutls.tls.client_certificate import ClientCertificate
from mutls.tls.context import ServerContext
from mutls.tls.info import TLSInfo
from mutls.tls.options import ClientCertMode
from mutls.tls.verdicts import verdicts_of
from mutls.tls.verify import VerifyFailure

#: the largest TLS record's plaintext: one SSL_read never returns more.
READ_SIZE = 16384
_SSL_ERROR_WANT_READ = int(_lib.SSL_ERROR_WANT_READ)
_SSL_ERROR_ZERO_RETURN = int(_lib.SSL_ERROR_ZERO_RETURN)
_SHUTDOWN_DONE = int(_lib.SSL_SENT_SHUTDOWN | _lib.SSL_RECEIVED_SHUTDOWN)
_alloc = _ffi.new_allocator(should_clear_after_alloc=False)

#: what a plain-HTTP request starts with (RFC 9110 methods, and the HTTP/2 preface).
HTTP_METHODS = tuple(
    m.encode() + b" "
    for m in ("GET", "POST", "HEAD", "PUT", "DELETE", "OPTIONS", "PATCH", "CONNECT", "TRACE", "PRI")
)
_SNIFF_LIMIT = max(len(m) for m in HTTP_METHODS)
_TLS_HANDSHAKE_RECORD = 0x16
#: a burst larger than this through a memory BIO makes it be renewed once drained.
BIO_KEEP_BYTES = 16 * 1024


class TLSError(Exception):
    """The handshake or a record failed; the connection is dead.

    ``alert`` is the name of the alert this side sent (already waiting in ``data_to_send()``),
    e.g. ``"protocol_version"``, or ``None``; ``received_alert`` the one the peer sent, if any.
    """

    def __init__(
        self, message: str, *, alert: str | None = None, received_alert: str | None = None
    ) -> None:
        super().__init__(message)
        self.alert = alert
        self.received_alert = received_alert


class PlainHTTPError(TLSError):
    """The first bytes are a plain-HTTP request: answer a clear-text 400 and close.

    ``data`` holds the bytes seen (for the log); nothing is queued in ``data_to_send()``.
    """

    def __init__(self, data: bytes) -> None:
        super().__init__("plain HTTP request sent to the TLS port")
        self.data = data


class TLSConnection:
    """One server-side TLS connection: bytes in, plaintext out, ciphertext to send.

    ``handshake_complete`` turns True once the handshake is done; ``info`` then holds the
    connection's facts and ``info.client_certificate`` the verdict on the client's certificate.
    ``peer_closed`` is True once the peer sent close_notify or closed TCP.
    """

    def __init__(self, context: ServerContext) -> None:
        self._context = context
        ssl = SSL.Connection(context.ssl_context, None)
        ssl.set_accept_state()
        # A weak reference: the callbacks find this object without a reference cycle.
        ssl.set_app_data(weakref.ref(self))
        self._ssl = ssl
        self._ptr = ssl._ssl
        # OpenSSL drops the session of an SSL freed without a close_notify sent, so a client
        # that just closes TCP (most do) could never resume; RFC 5246 7.2.1 no longer asks
        # for that. Mark the shutdown done when this object goes away, before SSL_free.
        weakref.finalize(self, _lib.SSL_set_shutdown, self._ptr, _SHUTDOWN_DONE)
        self._rbio = ssl._into_ssl
        self._wbio = ssl._from_ssl
        # The memory BIOs keep the capacity of their largest burst (handshake flights, a big
        # upload or answer); set when it is worth giving back (see _renew_bios).
        self._bios_grown = False
        self._sniffing: bytes | None = b""
        self._verify_failure: VerifyFailure | None = None
        self._sent_alert: int | None = None
        self._received_alert: int | None = None
        self._failed: TLSError | None = None
        self._closing = False
        self.handshake_complete = False
        self.info: TLSInfo | None = None
        self.peer_closed = False

    # -- input -------------------------------------------------------------------------------

    def receive_data(self, data: bytes) -> bytes:
        """Feed ciphertext from the socket; return the plaintext now readable (maybe ``b""``).

        ``b""`` means the peer closed TCP. Raises :class:`TLSError` when the handshake or a
        record fails (send ``data_to_send()`` then close), :class:`PlainHTTPError` for plain HTTP.
        """
        if not data:
            self.peer_closed = True
            return b""
        if self._failed is not None:
            raise self._failed
        if self._sniffing is not None:
            sniffed = self._sniff(data)
            if sniffed is None:
                return b""
            data = sniffed
        if _lib.BIO_write(self._rbio, data, len(data)) != len(data):
            raise self._fail_with(TLSError("the memory BIO refused the data"))
        if len(data) > BIO_KEEP_BYTES:
            self._bios_grown = True
        # SSL_get_error reads the thread's error queue first: a stale entry left by anything
        # else on this thread would turn "want more data" into a failure (nginx clears too).
        _lib.ERR_clear_error()
        if not self.handshake_complete and not self._handshake():
            return b""
        return self._read()

    def _sniff(self, data: bytes) -> bytes | None:
        """Tell a plain-HTTP request from a ClientHello by its first bytes."""
        seen = (self._sniffing or b"") + data
        if seen[0] == _TLS_HANDSHAKE_RECORD:
            self._sniffing = None
            return seen
        if seen.startswith(HTTP_METHODS):
            raise self._fail_with(PlainHTTPError(seen[:_SNIFF_LIMIT]))
        if len(seen) < _SNIFF_LIMIT and any(m.startswith(seen) for m in HTTP_METHODS):
            self._sniffing = seen  # "GE" so far: wait for more before deciding
            return None
        self._sniffing = None  # neither: OpenSSL answers it with the proper alert
        return seen

    def _handshake(self) -> bool:
        result = _lib.SSL_do_handshake(self._ptr)
        if result != 1:
            if _lib.SSL_get_error(self._ptr, result) == _SSL_ERROR_WANT_READ:
                return False
            self._raise_failure(result)
        self._establish()
        return True

    def _read(self) -> bytes:
        chunks: list[bytes] = []
        ptr = self._ptr
        while True:
            buf = _alloc("char[]", READ_SIZE)
            count = _lib.SSL_read(ptr, buf, READ_SIZE)
            if count > 0:
                chunks.append(_ffi.buffer(buf, count)[:])
                # One record per read: go on only while a full record or more input is left.
                if count < READ_SIZE and _lib.BIO_get_mem_data(self._rbio, _ffi.NULL) <= 0:
                    break
                continue
            error = _lib.SSL_get_error(ptr, count)
            if error == _SSL_ERROR_WANT_READ:
                break
            if error == _SSL_ERROR_ZERO_RETURN:
                self.peer_closed = True
                break
            self._raise_failure(count)
        if len(chunks) == 1:
            return chunks[0]
        return b"".join(chunks)

    # -- output ------------------------------------------------------------------------------

    def data_to_send(self) -> bytes:
        """Ciphertext to write to the socket now (``b""`` if none)."""
        pending = _lib.BIO_get_mem_data(self._wbio, _ffi.NULL)
        if pending <= 0:
            return b""
        buf = _alloc("char[]", pending)
        count = _lib.BIO_read(self._wbio, buf, pending)
        if self._bios_grown or pending > BIO_KEEP_BYTES:
            self._renew_bios()
        return _ffi.buffer(buf, count)[:] if count > 0 else b""

    def _renew_bios(self) -> None:
        """Swap both memory BIOs for empty ones once drained, freeing what they had grown to.

        Idle memory: after the handshake the BIOs held ~5 KB of flights per connection (more
        after a large request or answer), kept while the connection waits for its next request.
        """
        self._bios_grown = True
        if _lib.BIO_get_mem_data(self._rbio, _ffi.NULL) > 0:
            return  # input still to read: try again at the next flush
        if _lib.BIO_get_mem_data(self._wbio, _ffi.NULL) > 0:
            return
        rbio = _lib.BIO_new(_lib.BIO_s_mem())
        wbio = _lib.BIO_new(_lib.BIO_s_mem())
        if rbio == _ffi.NULL or wbio == _ffi.NULL:  # out of memory: keep the old ones
            for bio in (rbio, wbio):
                if bio != _ffi.NULL:
                    _lib.BIO_free(bio)
            return
        _lib.SSL_set_bio(self._ptr, rbio, wbio)  # frees the old pair
        self._rbio = self._ssl._into_ssl = rbio
        self._wbio = self._ssl._from_ssl = wbio
        self._bios_grown = False

    def send(self, data: bytes) -> None:
        """Encrypt application data; the records wait in ``data_to_send()``."""
        if not data:
            return
        if not self.handshake_complete or self._failed is not None:
            raise TLSError("cannot send: the TLS handshake is not complete")
        total = len(data)
        _lib.ERR_clear_error()
        result = _lib.SSL_write(self._ptr, data, total)
        if result == total:  # the usual case: one call, no copy
            return
        # pyOpenSSL turns on partial writes: SSL_write stops after one record.
        source = _ffi.from_buffer(data)
        done = 0
        while True:
            if result <= 0:
                self._raise_failure(result)
            done += result
            if done >= total:
                return
            result = _lib.SSL_write(self._ptr, source + done, total - done)

    def close(self) -> None:
        """Queue close_notify (once; nothing when the handshake never completed)."""
        if self._closing:
            return
        self._closing = True
        if self.handshake_complete and self._failed is None:
            try:
                self._ssl.shutdown()
            except SSL.Error:
                pass  # the peer is gone or the state is broken: there is nothing left to say

    # -- the handshake's outcome ---------------------------------------------------------------

    def _establish(self) -> None:
        ssl = self._ssl
        resumed = bool(_lib.SSL_session_reused(self._ptr))
        cipher = ssl.get_cipher_name()
        alpn = ssl.get_alpn_proto_negotiated()
        sni = ssl.get_servername()
        self.info = TLSInfo(
            version=ssl.get_protocol_version_name(),
            cipher=cipher or "",
            cipher_id=iana_cipher_id(cipher),
            client_certificate=self._client_certificate(resumed),
            server_cert_pem=self._context.server_cert_pem,
            alpn=alpn.decode("ascii", "replace") if alpn else None,
            sni=sni.decode("ascii", "replace") if sni else None,
            resumed=resumed,
        )
        self.handshake_complete = True
        self._bios_grown = True  # the flights are done: give their buffers back when drained

    def _client_certificate(self, resumed: bool) -> ClientCertificate:
        context = self._context
        if context.config.client_cert_mode is ClientCertMode.NONE:
            return ClientCertificate.absent()
        leaf = self._ssl.get_peer_certificate()
        if leaf is None:
            return ClientCertificate.absent()
        sent = tuple(self._ssl.get_peer_cert_chain() or ())  # server side: without the leaf
        leaf_der = crypto.dump_certificate(crypto.FILETYPE_ASN1, leaf)
        key = hashlib.sha256(leaf_der).hexdigest()  # = mutls.pki.certs.fingerprint
        if not resumed and sent:
            context.remember_chain(key, sent)
        verifier = context.verifier
        verdicts = verdicts_of(verifier)
        # No callback ran (or it judged by old trust): verify again, now, the same way.
        recheck = resumed or not context.handshake_store_current
        untrusted = sent or (context.chain_hint(key) if recheck else ())
        ders = (leaf_der, *(crypto.dump_certificate(crypto.FILETYPE_ASN1, c) for c in untrusted))
        failure = self._verify_failure
        if recheck:
            memo: Hashable = (resumed, ders)
        else:  # the callback's finding is an input: same chain and same finding, same verdict
            memo = (resumed, ders, failure and (failure.code, failure.depth))
        known = verdicts.get(memo)
        if known is not None:
            return known
        if recheck:
            failure = verifier.verify(leaf, untrusted)
        chain = (leaf.to_cryptography(), *(c.to_cryptography() for c in sent))
        verdict = verifier.verdict(chain, failure, resumed=resumed)
        # A verdict found now depends on the clock (expiry, CRL dates): reused for a few
        # seconds at most; one from the handshake's own callback is reused for its inputs.
        expiring = (*chain, *(c.to_cryptography() for c in untrusted)) if recheck else None
        verdicts.put(memo, verdict, expiring)
        return verdict

    # -- failures ------------------------------------------------------------------------------

    def _raise_failure(self, result: int) -> None:
        """Turn OpenSSL's error for ``result`` into a :class:`TLSError` and raise it."""
        try:
            # pyOpenSSL's own translation: the error queue and any callback's exception.
            self._ssl._raise_ssl_error(self._ptr, result)
        except SSL.Error as exc:
            raise self._fail_with(TLSError(_describe(exc), **self._alerts())) from None
        raise self._fail_with(TLSError("TLS failure", **self._alerts()))

    def _alerts(self) -> dict[str, str | None]:
        sent, received = self._sent_alert, self._received_alert
        return {
            "alert": alert_name(sent) if sent is not None else None,
            "received_alert": alert_name(received) if received is not None else None,
        }

    def _fail_with(self, error: TLSError) -> TLSError:
        self._failed = error
        return error


def _describe(exc: SSL.Error) -> str:
    """OpenSSL's reasons as one line, e.g. ``unsupported protocol``."""
    if isinstance(exc, SSL.SysCallError):
        return f"connection error: {exc.args[-1]}"
    queue = exc.args[0] if exc.args else None
    if isinstance(queue, list) and queue:
        return "; ".join(str(entry[-1]) for entry in queue if entry)
    return str(exc) or type(exc).__name__
