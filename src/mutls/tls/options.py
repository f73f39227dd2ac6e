"""The two questions a client-certificate server answers: ask for one? and what if it is bad?"""

from __future__ import annotations

import enum


class ClientCertMode(enum.Enum):
    """Whether the server asks for a client certificate (a TLS CertificateRequest)."""

    NONE = "none"  #: never asks (XSP's --https)
    OPTIONAL = "optional"  #: asks; a client may send none (XSP's --https-client-accept)
    REQUIRE = "require"  #: asks; a request without one is refused (--https-client-require)


class VerifyPolicy(enum.Enum):
    """What happens to a request whose certificate is missing (when required) or not valid."""

    STRICT = "strict"  #: refused with 403 before the app runs
    REPORT = "report"  #: the app runs and sees ``valid=False`` and the ``error`` (as XSP)


#: the largest Certificate message a client may send (``--max-client-chain``): a leaf and a
#: few intermediates take 1-6 KB; OpenSSL's own default is 100 KB.
DEFAULT_MAX_CLIENT_CHAIN = 32 * 1024
MIN_CLIENT_CHAIN = 4 * 1024
MAX_CLIENT_CHAIN = 100 * 1024
