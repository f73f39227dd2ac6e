"""Is this file key material? Decided from its first bytes, by content, whatever its name.

The static file server (``--root``) asks before it sends a file: the article's folder holds
``root.key``, the P12s and ``poupou.pem`` (certificate *and* key, from ``pkcs12 -nodes``), and a
copy named ``root.key.bak`` or ``site/id.txt`` is as secret as the original. Formats are
recognised by magic number or structure, never by trying passwords, and only a key small enough
to be whole in :data:`SNIFF_BYTES` is handed to a parser. A miss publishes a secret while a false
alarm costs a 404, so where a rule has to guess it guesses "secret": any PEM block labelled
``... PRIVATE KEY`` counts, even one quoted in a page.
"""

from __future__ import annotations

import re

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives.serialization import load_der_private_key

from mutls.pki import der
from mutls.pki.keys import describe_key, is_pvk

#: how much of a file is looked at: enough for a whole DER key (RSA-8192 takes under 5 KB).
SNIFF_BYTES = 8192

_JAVA_KEYSTORES = {b"\xfe\xed\xfe\xed": "JKS", b"\xce\xce\xce\xce": "JCEKS"}
_PKCS7_DATA = "1.2.840.113549.1.7.1"
_PKCS7_SIGNED_DATA = "1.2.840.113549.1.7.2"  # PKCS#12's public-key integrity mode
#: EncryptedPrivateKeyInfo's algorithms: PBES2, PBES1 and PKCS#12's own PBEs.
_KEY_ENCRYPTIONS = {
    "1.2.840.113549.1.5.13",
    *(f"1.2.840.113549.1.5.{n}" for n in (1, 3, 4, 6, 10, 11)),
    *(f"1.2.840.113549.1.12.1.{n}" for n in range(1, 7)),
}
# PEM (RSA, EC, DSA, PKCS#8, ENCRYPTED, OPENSSH, PGP ... PRIVATE KEY) and SSH2's "---- BEGIN".
_PEM_KEY = re.compile(rb"-{4,5} ?BEGIN ([A-Z0-9 ]{0,40}PRIVATE KEY)")
# SSLKEYLOGFILE lines (NSS's format, also OpenSSL's, curl's and mutls's --keylog).
_KEY_LOG = re.compile(
    rb"^(CLIENT_RANDOM|RSA|CLIENT_EARLY_TRAFFIC_SECRET|CLIENT_HANDSHAKE_TRAFFIC_SECRET"
    rb"|SERVER_HANDSHAKE_TRAFFIC_SECRET|CLIENT_TRAFFIC_SECRET_\d+|SERVER_TRAFFIC_SECRET_\d+"
    rb"|EARLY_EXPORTER_SECRET|EXPORTER_SECRET|ECH_SECRET) [0-9A-Fa-f]{16,} [0-9A-Fa-f]{16,}",
    re.MULTILINE,
)


def key_material(head: bytes, *, whole: bool) -> str | None:
    """What secret a file holds, in a few words for a log line, or ``None``.

    ``head`` is the file's first :data:`SNIFF_BYTES` bytes, ``whole`` says it is all of the file:
    DER keys carry no magic number, so only a whole file is tried as one.
    """
    if is_pvk(head):
        return "Mono/Microsoft PVK private key"
    if head[:4] in _JAVA_KEYSTORES:
        return f"Java keystore ({_JAVA_KEYSTORES[head[:4]]})"
    if head.startswith(b"PuTTY-User-Key-File-"):
        return "PuTTY private key"
    if is_pkcs12(head):
        return "PKCS#12 (PFX)"
    found = secret_text(head)
    if found is None and whole:
        found = _der_private_key(head)
    return found


def secret_text(data: bytes) -> str | None:
    """A PEM private key block or TLS key log lines anywhere in ``data``, or ``None``.

    Cheap enough to run on every piece of a large text file: two substring searches, and a
    regular expression only where one of them hits.
    """
    if b"PRIVATE KEY" in data and (match := _PEM_KEY.search(data)) is not None:
        return f"PEM private key ({match.group(1).decode('ascii')})"
    if (b"_SECRET " in data or b"CLIENT_RANDOM " in data or b"RSA " in data) and (
        match := _KEY_LOG.search(data)
    ) is not None:
        return f"TLS key log ({match.group(1).decode('ascii')} lines)"
    return None


def is_pkcs12(head: bytes) -> bool:
    """True for the start of a PKCS#12 file: SEQUENCE { INTEGER 3, ContentInfo { pkcs7 data } }.

    Only the headers are read, so a file's first bytes are enough, and BER's indefinite lengths
    (old Windows exports) are taken too.
    """
    try:
        tag, pos, _length = der.header(head, 0)
        if tag != der.SEQUENCE:
            return False
        tag, pos, length = der.header(head, pos)
        if tag != der.INTEGER or length != 1 or head[pos] != 3:
            return False
        tag, pos, _length = der.header(head, pos + 1)
        if tag != der.SEQUENCE:
            return False
        tag, pos, length = der.header(head, pos)
        if tag != der.OID or length is None:
            return False
        return der.oid_text(head[pos : pos + length]) in (_PKCS7_DATA, _PKCS7_SIGNED_DATA)
    except (IndexError, ValueError):
        return False


def _der_private_key(data: bytes) -> str | None:
    """A whole DER private key (PKCS#8, PKCS#1, SEC1, DSA; encrypted PKCS#8), or ``None``."""
    if not der.is_sequence(data):
        return None
    if _encrypted_pkcs8(data):
        return "encrypted PKCS#8 private key (DER)"
    try:
        # validation would only cost time: whatever loads is a key, valid or not
        key = load_der_private_key(data, None, unsafe_skip_rsa_key_validation=True)
    except UnsupportedAlgorithm:
        return "PKCS#8 private key (DER) of an algorithm cryptography does not know"
    except TypeError:  # cryptography's "private key is encrypted"
        return "encrypted private key (DER)"
    except Exception:  # ValueError, and the Rust bindings' own errors on odd DER
        return None
    return f"DER private key ({describe_key(key)})"


def _encrypted_pkcs8(data: bytes) -> bool:
    """EncryptedPrivateKeyInfo: SEQUENCE { AlgorithmIdentifier { a PBE OID, ... }, OCTET STRING }
    and nothing else, so that a certificate or a CMS message never matches."""
    try:
        _tag, pos, end = der.element(data, 0)
        tag, algorithm, after = der.element(data, pos)
        if tag != der.SEQUENCE:
            return False
        tag, start, stop = der.element(data, algorithm)
        if tag != der.OID or der.oid_text(data[start:stop]) not in _KEY_ENCRYPTIONS:
            return False
        tag, _start, stop = der.element(data, after)
        return tag == der.OCTET_STRING and stop == end
    except (IndexError, ValueError):
        return False
