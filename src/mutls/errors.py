"""Errors that reach a user: one readable line that names the file or flag and the fix.

One naming rule across mutls: a class named ``...Error`` is an exception (as Python's own), and
a value is never named so; a value that records a failed check rather than raising it is a
``...Failure`` (:class:`mutls.tls.verify.VerifyFailure` for a client certificate,
:class:`mutls.client.connection.ServerCertificateFailure` for a server's).
"""

from __future__ import annotations


class MutlsError(Exception):
    """Base of every error mutls reports to a user instead of a traceback.

    ``exit_code`` is what a command exits with when this error ends it.
    """

    exit_code = 2


class UsageError(MutlsError):
    """The command line is wrong: an unknown option, a missing argument, flags that contradict."""


class PKIError(MutlsError):
    """A key, certificate, PKCS#12 or CRL could not be made, read or written."""


class FileFormatError(PKIError):
    """A file is not what it should be: corrupt, truncated, or of another kind."""


class WrongPasswordError(PKIError):
    """A password does not open a PKCS#12 file or an encrypted key."""


class PasswordError(MutlsError):
    """No password could be obtained from the sources given."""


class AppLoadError(UsageError):
    """The app's own code failed while it was imported or made (its factory raised).

    ``details`` is the app's traceback, printed before the one line: the user has to fix
    their code, and needs to see where it failed.
    """

    def __init__(self, message: str, details: str) -> None:
        super().__init__(message)
        self.details = details
