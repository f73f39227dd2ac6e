"""Allow rules: which valid client certificates may call, declared once for server and apps.

Validity says a trusted CA vouches for the certificate; authorization says whether *this*
client may call *this* service (mod_ssl's ``SSLRequire``, Envoy's RBAC principals). The two
stay apart: a rule never changes ``valid``, and no rule admits a certificate that is not valid
(a name nobody vouches for proves nothing).

A file (TOML, read with the standard library) holds ``[[allow]]`` tables. A client is admitted
by the first rule all of whose conditions hold; a condition given a list holds when any item
does::

    [[allow]]
    name = "ops"                                   # optional: how the verdict names the rule
    issuer = "CN=Team CA"                          # exact distinguished names
    subject_pattern = "CN=*, OU=ops, O=Example"    # '*' within one value

    [[allow]]
    spiffe = "spiffe://example.org/ns/prod/sa/*"   # '*' within one segment, '**' any

    [[allow]]
    dns = ["*.svc.example.org"]
    email = "*@example.org"
    uri = "https://id.example.org/**"
    spki_sha256 = "sha256//r/mIkG3eEpVdm+u/ko/cwxzOMo1bk4TyHIlByibiA5E="
    fingerprint_sha256 = "5e:8f:..."
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography import x509

from mutls.authz.patterns import (
    RuleError,
    digest_hex,
    dns_matches,
    email_matches,
    name_matches,
    spiffe_id,
    uri_matches,
)
from mutls.errors import MutlsError
from mutls.pki.names import parse_name
from mutls.pki.trust import spki_sha256
from mutls.tls.client_certificate import ClientCertificate

#: the conditions a rule may hold, for messages.
CONDITIONS = (
    "subject",
    "subject_pattern",
    "issuer",
    "issuer_pattern",
    "dns",
    "email",
    "uri",
    "spiffe",
    "spki_sha256",
    "fingerprint_sha256",
)


@dataclass(frozen=True)
class Authorization:
    """Whether the allow rules admit a client, by which rule, and why (for a 403 or a log)."""

    authorized: bool
    rule: str | None
    reason: str


@dataclass(frozen=True)
class AllowRule:
    """One ``[[allow]]`` table: every condition given must hold (a list: any of its items)."""

    name: str
    subject: tuple[x509.Name, ...] = ()
    subject_pattern: tuple[x509.Name, ...] = ()
    issuer: tuple[x509.Name, ...] = ()
    issuer_pattern: tuple[x509.Name, ...] = ()
    dns: tuple[str, ...] = ()
    email: tuple[str, ...] = ()
    uri: tuple[str, ...] = ()
    spiffe: tuple[str, ...] = ()
    spki_sha256: frozenset[str] = field(default=frozenset())
    fingerprint_sha256: frozenset[str] = field(default=frozenset())

    @classmethod
    def from_mapping(cls, table: Mapping[str, Any], name: str) -> AllowRule:
        """A rule from a TOML table or a dict; raises :class:`RuleError` naming ``name``."""
        unknown = sorted(set(table) - {"name", *CONDITIONS})
        if unknown:
            raise RuleError(
                f"{name}: unknown key {unknown[0]!r} (known: name, {', '.join(CONDITIONS)})"
            )
        label = table.get("name", name)
        if not isinstance(label, str) or not label:
            raise RuleError(f"{name}: 'name' must be a non-empty string")
        values = {key: _strings(table[key], f"{name}: {key}") for key in CONDITIONS if key in table}
        if not values:
            raise RuleError(
                f"{name}: no condition, so it would admit every valid certificate; "
                f"give one of {', '.join(CONDITIONS)}"
            )
        names = {k: _names(values.get(k, ()), f"{name}: {k}") for k in _NAME_KEYS}
        digests = {
            k: frozenset(digest_hex(v, f"{name}: {k}") for v in values.get(k, ()))
            for k in ("spki_sha256", "fingerprint_sha256")
        }
        return cls(
            label,
            subject=names["subject"],
            subject_pattern=names["subject_pattern"],
            issuer=names["issuer"],
            issuer_pattern=names["issuer_pattern"],
            dns=values.get("dns", ()),
            email=values.get("email", ()),
            uri=values.get("uri", ()),
            spiffe=_spiffe_patterns(values.get("spiffe", ()), f"{name}: spiffe"),
            spki_sha256=digests["spki_sha256"],
            fingerprint_sha256=digests["fingerprint_sha256"],
        )

    def admits(self, cert: ClientCertificate) -> bool:
        """Whether every condition of this rule holds for ``cert``'s leaf."""
        leaf = cert.certificate
        if leaf is None:
            return False
        san = cert.san
        checks: list[tuple[Iterable[Any], Callable[[Any], bool]]] = [
            (self.subject, lambda p: name_matches(p, leaf.subject, wildcards=False)),
            (self.subject_pattern, lambda p: name_matches(p, leaf.subject, wildcards=True)),
            (self.issuer, lambda p: name_matches(p, leaf.issuer, wildcards=False)),
            (self.issuer_pattern, lambda p: name_matches(p, leaf.issuer, wildcards=True)),
            (self.dns, lambda p: any(dns_matches(p, n) for n in san.dns)),
            (self.email, lambda p: any(email_matches(p, n) for n in san.email)),
            (self.uri, lambda p: any(uri_matches(p, n) for n in san.uri)),
            (self.spiffe, lambda p: (i := spiffe_id(san.uri)) is not None and uri_matches(p, i)),
            (self.spki_sha256, lambda d: d == spki_sha256(leaf)),
            (self.fingerprint_sha256, lambda d: d == cert.fingerprint_sha256),
        ]
        return all(any(map(test, given)) for given, test in checks if given)


_NAME_KEYS = ("subject", "subject_pattern", "issuer", "issuer_pattern")


def _strings(value: Any, where: str) -> tuple[str, ...]:
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list) or not items or not all(isinstance(i, str) for i in items):
        raise RuleError(f"{where}: expected a string or a non-empty list of strings")
    return tuple(items)


def _names(values: Iterable[str], where: str) -> tuple[x509.Name, ...]:
    try:
        return tuple(parse_name(v) for v in values)
    except MutlsError as exc:
        raise RuleError(f"{where}: {exc}") from None


def _spiffe_patterns(values: Iterable[str], where: str) -> tuple[str, ...]:
    for value in values:
        if not value.startswith("spiffe://") or value == "spiffe://":
            raise RuleError(f"{where}: {value!r} is not a SPIFFE ID (spiffe://trust-domain/path)")
    return tuple(values)


@dataclass(frozen=True)
class AllowRules:
    """A set of allow rules (from one file): the first rule that holds admits the client."""

    rules: tuple[AllowRule, ...]
    source: str = "the allow rules"

    @classmethod
    def from_mappings(cls, tables: Iterable[Mapping[str, Any]], source: str) -> AllowRules:
        """Rules from dicts (as a TOML file's ``[[allow]]`` tables)."""
        rules = tuple(
            AllowRule.from_mapping(t, f"rule {n} of {source}") for n, t in enumerate(tables, 1)
        )
        if not rules:
            raise RuleError(f"{source}: no [[allow]] rule: nobody would be admitted")
        return cls(rules, source)

    @classmethod
    def parse(cls, text: str, source: str = "<rules>") -> AllowRules:
        """Rules from TOML text; raises :class:`RuleError` (one line naming ``source``)."""
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise RuleError(f"{source}: not valid TOML: {exc}") from None
        extra = sorted(set(data) - {"allow"})
        if extra:
            raise RuleError(f"{source}: unknown key {extra[0]!r} (rules go in [[allow]] tables)")
        tables = data.get("allow", [])
        if not isinstance(tables, list) or not all(isinstance(t, dict) for t in tables):
            raise RuleError(f"{source}: 'allow' must be [[allow]] tables")
        return cls.from_mappings(tables, source)

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> AllowRules:
        """Rules from a TOML file (``--allow FILE``)."""
        try:
            text = Path(path).read_text(encoding="utf-8")
        except FileNotFoundError:
            raise RuleError(f"{path}: no such allow-rules file") from None
        except (OSError, UnicodeDecodeError) as exc:
            raise RuleError(f"{path}: cannot read the allow rules: {exc}") from None
        return cls.parse(text, str(path))

    def check(self, cert: ClientCertificate | None) -> Authorization:
        """Whether these rules admit the client with ``cert`` (only a valid one can be)."""
        if cert is None or not cert.present:
            return Authorization(False, None, "no client certificate")
        if not cert.valid:
            return Authorization(
                False, None, f"client certificate not valid: {cert.error or 'unknown error'}"
            )
        for rule in self.rules:
            if rule.admits(cert):
                return Authorization(True, rule.name, f"admitted by {rule.name}")
        return Authorization(
            False, None, f"{cert.subject or 'the certificate'} matches no rule of {self.source}"
        )
