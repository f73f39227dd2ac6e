"""Authorization by identity: which valid client certificates may call, and who they are.

::

    from mutls.authz import AllowRules
    rules = AllowRules.load("allow.toml")          # [[allow]] tables, see mutls.authz.rules
    verdict = rules.check(mutls.client_certificate(request))
    verdict.authorized, verdict.rule, verdict.reason

The server applies the same rules with ``mutls serve --allow allow.toml`` and sets
``REMOTE_USER`` with ``--remote-user cn`` (``email``, ``spiffe``, ...).
"""

from mutls.authz.access import Access, Admission, admit, authorization_status
from mutls.authz.patterns import RuleError
from mutls.authz.rules import AllowRule, AllowRules, Authorization
from mutls.authz.user import UserName

__all__ = [
    "Access",
    "Admission",
    "AllowRule",
    "AllowRules",
    "Authorization",
    "RuleError",
    "UserName",
    "admit",
    "authorization_status",
]
