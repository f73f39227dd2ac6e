"""``TLSConnection``: one server-side TLS connection, sans-I/O, on pyOpenSSL memory BIOs.

Bytes from the socket go in with :meth:`TLSConnection.receive_data`, which drives the handshake
and returns the plaintext now readable; whatever must go to the socket comes out of
:meth:`TLSConnection.data_to_send` (call it after every other call, failures included: a failed
handshake leaves its alert there). OpenSSL is called through :mod:`mutls.tls._openssl`: no
exception per record, and reads stop as soon as the input BIO is empty.
"""

from __future__ import annotations

import copy
import threading
import weakref
from typing import Any

from mutls.tls import _openssl
from mutls.tls._openssl import ffi as _ffi
from mutls.tls._openssl import lib as _lib
from mutls.tls.alerts import alert_name
from mutls.tls.ciphers import iana_cipher_id
from mutls.tls.client_certificate import ClientCertificate
from mutls.tls.context import ServerContext, disown, own
from mutls.tls.info import TLSInfo
from mutls.tls.options import ClientCertMode
from mutls.tls.verdicts import key_of, verdicts_of
from mutls.tls.verify import FailureRecorder, Verification

#: the largest TLS record's plaintext: one SSL_read never returns more.
READ_SIZE = 16384
_SSL_ERROR_WANT_READ = _openssl.SSL_ERROR_WANT_READ
_SSL_ERROR_ZERO_RETURN = _openssl.SSL_ERROR_ZERO_RETURN
_SHUTDOWN_DONE = _openssl.SSL_SENT_SHUTDOWN | _openssl.SSL_RECEIVED_SHUTDOWN
_alloc = _ffi.new_allocator(should_clear_after_alloc=False)
#: the scratch buffer's size: a record's plaintext (SSL_read), or what the output BIO holds
#: after a response of a few records (BIO_read); more is read in further steps.
SCRATCH_SIZE = 64 * 1024


class _Scratch(threading.local):
    """One buffer per thread that OpenSSL reads into, copied out at once: no allocation per
    record (OpenSSL is called without the GIL, so threads cannot share one)."""

    def __init__(self) -> None:
        self.buf = _alloc("char[]", SCRATCH_SIZE)


_scratch = _Scratch()

#: what a plain-HTTP request starts with (RFC 9110 methods, and the HTTP/2 preface).
HTTP_METHODS = tuple(
    m.encode() + b" "
    for m in ("GET", "POST", "HEAD", "PUT", "DELETE", "OPTIONS", "PATCH", "CONNECT", "TRACE", "PRI")
)
_SNIFF_LIMIT = max(len(m) for m in HTTP_METHODS)
_TLS_HANDSHAKE_RECORD = 0x16
#: a burst larger than this through a memory BIO makes it be renewed once drained.
BIO_KEEP_BYTES = 16 * 1024
#: bytes handed to OpenSSL at a time until the handshake is complete: a TLS record (16 KiB of
#: plaintext, TLS 1.3's and 1.2's expansion, the header), so that a Certificate message over
#: ``--max-client-chain`` is refused at its first record and the rest of a ~96 KB chain is
#: never copied into OpenSSL's buffer (see :meth:`TLSConnection.receive_data`).
HANDSHAKE_FEED = 16384 + 2048 + 5


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
        self.context = context
        ptr = _lib.SSL_new(context.ctx)
        if ptr == _ffi.NULL:
            raise MemoryError("SSL_new failed")
        _lib.SSL_set_accept_state(ptr)
        self._ptr = ptr
        self._rbio = _lib.BIO_new(_lib.BIO_s_mem())
        self._wbio = _lib.BIO_new(_lib.BIO_s_mem())
        _lib.SSL_set_bio(ptr, self._rbio, self._wbio)  # the SSL owns them from now on
        # The callbacks find this object by its SSL *, through a weak reference.
        weakref.finalize(self, _free_ssl, ptr, own(ptr, self))
        #: the verify callback's findings; the key of the client's exact chain (tickets).
        self.verify_recorder = FailureRecorder()
        self.chain_key: bytes | None = None
        # The memory BIOs keep the capacity of their largest burst (handshake flights, a big
        # upload or answer); set when it is worth giving back (see _renew_bios).
        self._bios_grown = False
        self._sniffing: bytes | None = b""
        self.sent_alert: int | None = None
        self.received_alert: int | None = None
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
            raise copy.copy(self._failed)
        if self._sniffing is not None:
            sniffed = self._sniff(data)
            if sniffed is None:
                return b""
            data = sniffed
        if len(data) > BIO_KEEP_BYTES:
            self._bios_grown = True
        # SSL_get_error reads the thread's error queue first: a stale entry left by anything
        # else on this thread would turn "want more data" into a failure (nginx clears too).
        _lib.ERR_clear_error()
        if not self.handshake_complete:
            # A record at a time: a refusal (a chain over the cap) stops the copying.
            at, total = HANDSHAKE_FEED, len(data)
            self._write_in(data[:HANDSHAKE_FEED] if total > HANDSHAKE_FEED else data)
            while not self._handshake():
                if at >= total:
                    return b""
                self._write_in(data[at : at + HANDSHAKE_FEED])
                at += HANDSHAKE_FEED
            if at < total:
                self._write_in(data[at:])
        else:
            self._write_in(data)
        return self._read()

    def _write_in(self, data: bytes) -> None:
        """Ciphertext into the input BIO."""
        if _lib.BIO_write(self._rbio, data, len(data)) != len(data):
            raise self._fail_with(TLSError("the memory BIO refused the data"))

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
        buf = _scratch.buf
        while True:
            count = _lib.SSL_read(ptr, buf, READ_SIZE)
            if count > 0:
                chunks.append(_ffi.buffer(buf, count)[:])
                # One record per read: go on only while a full record or more input is left.
                if count < READ_SIZE and _lib.BIO_ctrl_pending(self._rbio) <= 0:
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
        buf = _scratch.buf
        count = _lib.BIO_read(self._wbio, buf, SCRATCH_SIZE)  # an empty BIO: -1, no error
        if count <= 0:
            return b""
        out: bytes = _ffi.buffer(buf, count)[:]
        if count == SCRATCH_SIZE:  # a large answer: the rest in one piece
            pending = _lib.BIO_ctrl_pending(self._wbio)
            if pending > 0:
                rest = _alloc("char[]", pending)
                more = _lib.BIO_read(self._wbio, rest, pending)
                out += _ffi.buffer(rest, max(more, 0))[:]
        if self._bios_grown or len(out) > BIO_KEEP_BYTES:
            self._renew_bios()
        return out

    def _renew_bios(self) -> None:
        """Swap both memory BIOs for empty ones once drained, freeing what they had grown to.

        Idle memory: after the handshake the BIOs held ~5 KB of flights per connection (more
        after a large request or answer), kept while the connection waits for its next request.
        """
        self._bios_grown = True
        if _lib.BIO_ctrl_pending(self._rbio) > 0:
            return  # input still to read: try again at the next flush
        if _lib.BIO_ctrl_pending(self._wbio) > 0:
            return
        rbio = _lib.BIO_new(_lib.BIO_s_mem())
        wbio = _lib.BIO_new(_lib.BIO_s_mem())
        if rbio == _ffi.NULL or wbio == _ffi.NULL:  # out of memory: keep the old ones
            for bio in (rbio, wbio):
                if bio != _ffi.NULL:
                    _lib.BIO_free(bio)
            return
        _lib.SSL_set_bio(self._ptr, rbio, wbio)  # frees the old pair
        self._rbio = rbio
        self._wbio = wbio
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
            _lib.SSL_shutdown(self._ptr)  # the peer may be gone: nothing left to say then
            _openssl.errors()

    # -- the handshake's outcome ---------------------------------------------------------------

    def _establish(self) -> None:
        ptr = self._ptr
        resumed = bool(_lib.SSL_session_reused(ptr))
        cipher_ptr = _lib.SSL_get_current_cipher(ptr)
        cipher = _openssl.text(_lib.SSL_CIPHER_get_name(cipher_ptr)) if cipher_ptr else None
        alpn_data = _ffi.new("const unsigned char **")
        alpn_len = _ffi.new("unsigned int *")
        _lib.SSL_get0_alpn_selected(ptr, alpn_data, alpn_len)
        alpn = _ffi.buffer(alpn_data[0], alpn_len[0])[:] if alpn_len[0] else None
        sni = _openssl.text(_lib.SSL_get_servername(ptr, _openssl.TLSEXT_NAMETYPE_host_name))
        self.info = TLSInfo(
            version=_openssl.text(_lib.SSL_get_version(ptr)) or "",
            cipher=cipher or "",
            cipher_id=iana_cipher_id(cipher),
            client_certificate=self._client_certificate(resumed),
            server_cert_pem=self.context.server_cert_pem,
            alpn=alpn.decode("ascii", "replace") if alpn else None,
            sni=sni,
            resumed=resumed,
        )
        self.handshake_complete = True
        self._bios_grown = True  # the flights are done: give their buffers back when drained
        # Reading a certificate may leave notes on the error queue (OpenSSL 3.0 does for
        # extensions it refuses) that SSL_read would take for its own failure.
        _lib.ERR_clear_error()

    def _client_certificate(self, resumed: bool) -> ClientCertificate:
        """The verdict: :meth:`ClientVerifier.verdict` on what OpenSSL found, now.

        A full handshake's verify callback judged the client's chain with the context's
        current store: its findings and ``SSL_get0_verified_chain`` are the input. A resumed
        session ran no callback: the same verification runs now on the leaf and the exact
        certificates the client sent in its full handshake (a ticket's come from
        :class:`~mutls.tls.context.ChainHints`, a cached session's from the session itself).
        """
        context = self.context
        if context.config.client_cert_mode is ClientCertMode.NONE:
            return ClientCertificate.absent()
        ptr = self._ptr
        peer = _lib.SSL_get1_peer_certificate(ptr)
        if peer == _ffi.NULL:
            return ClientCertificate.absent()
        peer = _ffi.gc(peer, _lib.X509_free)
        leaf = _openssl.x509_to_der(peer)
        sent: tuple[bytes, ...] | None
        if self.chain_key is not None:
            sent = context.chain_hints.get(self.chain_key)
        else:
            sent = _openssl.stack_ders(_lib.SSL_get_peer_cert_chain(ptr))
        if sent is None:  # evicted since the ticket was accepted: the leaf alone, which can
            sent = ()  # only fail to build a chain the client's list would have built
        verifier = context.verifier
        verdicts = verdicts_of(verifier)
        if resumed:
            memo = key_of(b"resumed", leaf, sent)
            known = verdicts.get(memo)
            if known is None:
                verification = verifier.verify(leaf, sent)
                known = verifier.verdict(verification, sent=sent, resumed=True)
                verdicts.put(memo, known, known.chain)
            return known
        built = _openssl.stack_ders(_lib.SSL_get0_verified_chain(ptr)) or (leaf,)
        verification = Verification(built, self.verify_recorder.failure)
        failure = verification.failure
        found = f"{failure.code}/{failure.depth}" if failure is not None else ""
        memo = key_of(b"full", built, sent, found.encode())
        known = verdicts.get(memo)
        if known is None:
            known = verifier.verdict(verification, sent=sent)
            verdicts.put(memo, known, None)
        return known

    # -- failures ------------------------------------------------------------------------------

    def _raise_failure(self, result: int) -> None:
        """Turn OpenSSL's error for ``result`` into a :class:`TLSError` and raise it."""
        error = _lib.SSL_get_error(self._ptr, result)
        reasons = _openssl.errors()
        if reasons:
            message = "; ".join(reasons)
        elif error == _SSL_ERROR_ZERO_RETURN:
            message = "the peer closed the connection"
        else:
            message = f"TLS failure (SSL_get_error {error})"
        sent, received = self.sent_alert, self.received_alert
        raise self._fail_with(
            TLSError(
                message,
                alert=alert_name(sent) if sent is not None else None,
                received_alert=alert_name(received) if received is not None else None,
            )
        )

    def _fail_with(self, error: TLSError) -> TLSError:
        """Remember ``error``; a copy to raise. The one kept is never raised: a raised
        exception holds its traceback, whose frames hold this connection (and its caller), a
        cycle that kept every failed handshake's SSL, buffers and protocol until the cyclic
        garbage collector ran, which a flood of refused handshakes left for long in its oldest
        generation."""
        self._failed = error
        return copy.copy(error)


def _free_ssl(ptr: Any, address: int) -> None:
    """Free an ``SSL *`` whose connection is gone.

    OpenSSL drops the session of an SSL freed without a close_notify sent, so a client that
    just closes TCP (most do) could never resume; RFC 5246 7.2.1 no longer asks for that.
    """
    disown(address)
    _lib.SSL_set_shutdown(ptr, _SHUTDOWN_DONE)
    _lib.SSL_free(ptr)
