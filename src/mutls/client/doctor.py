"""``mutls doctor``: why was my client certificate not sent, or not accepted?

Connects once, with the certificate offered, recording every step of the handshake (see
:mod:`mutls.client.connection`), then asks for the page so that a TLS 1.3 server's verdict, which
arrives after the handshake, is read too. Each step gets a verdict; :mod:`.diagnosis` turns the
whole into one finding and a fix.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any

from mutls.client.answer import page_verdict, server_kind
from mutls.client.connection import (
    HOST_MISMATCH,
    ClientConfig,
    HandshakeRecord,
)
from mutls.client.diagnosis import diagnose
from mutls.client.hostname import certificate_names
from mutls.client.observation import Observation, observe


class Verdict(enum.Enum):
    """How one step went."""

    OK = "ok"
    WARN = "warn"
    FAIL = "fail"
    INFO = "info"
    SKIP = "skip"


@dataclass
class Step:
    """One line of the report: a name, a verdict, a summary, and indented details."""

    name: str
    verdict: Verdict
    summary: str
    details: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        """The step for ``--json``."""
        return {
            "name": self.name,
            "verdict": self.verdict.value,
            "summary": self.summary,
            "details": self.details,
        }


@dataclass
class DoctorReport:
    """Steps, the diagnosis, the fix, and whether a problem was found (exit 1)."""

    url: str
    steps: list[Step]
    diagnosis: str
    fix: str | None
    problem: bool
    notes: list[str] = field(default_factory=list)
    observation: Observation | None = None

    def to_json(self) -> dict[str, Any]:
        """The report for ``--json`` (steps plus the raw facts a machine wants)."""
        obs = self.observation
        rec = obs.record if obs is not None else None
        facts: dict[str, Any] = {}
        if rec is not None:
            facts = {
                "address": rec.address,
                "tls_version": rec.version,
                "cipher": rec.cipher,
                "alpn": rec.alpn,
                "server_chain": [c.subject.rfc4514_string() for c in rec.server_chain],
                "server_verified": rec.server_verified,
                "certificate_requested": rec.certificate_requested,
                "ca_names": [n.rfc4514_string() for n in rec.ca_names],
                "certificate_sent": rec.certificate_sent,
                "alert": rec.alert,
                "alert_after_handshake": rec.alert_after_handshake if rec.alert else None,
            }
        response = obs.response if obs is not None else None
        if response is not None:
            facts["http_status"] = response.status
            facts["http_first_line"] = response.first_line
        identity = obs.config.identity if obs is not None else None
        facts["offered_certificate"] = identity.subject if identity is not None else None
        return {
            "url": self.url,
            "ok": not self.problem,
            "steps": [s.to_json() for s in self.steps],
            "diagnosis": self.diagnosis,
            "fix": self.fix,
            "notes": self.notes,
            **facts,
        }

    def render(self) -> str:
        """The report for people."""
        marks = {
            Verdict.OK: " ok ",
            Verdict.WARN: "warn",
            Verdict.FAIL: "FAIL",
            Verdict.INFO: "info",
            Verdict.SKIP: "skip",
        }
        width = max(len(s.name) for s in self.steps) if self.steps else 0
        lines = [f"mutls doctor {self.url}"]
        for step in self.steps:
            lines.append(f"  [{marks[step.verdict]}] {step.name:<{width}}  {step.summary}")
            lines += [f"  {'':6} {'':<{width}}  - {d}" for d in step.details]
        lines.append("")
        lines.append(f"Diagnosis: {self.diagnosis}")
        if self.fix:
            lines.append(f"Fix: {self.fix}")
        lines += [f"Note: {n}" for n in self.notes]
        return "\n".join(lines)


def steps_of(obs: Observation, refused: bool = True) -> list[Step]:
    """The report's steps, in the order things happen (``refused``: the diagnosis found a
    problem, so an issuer the server did not name is a failure rather than a warning)."""
    steps: list[Step] = [_local_step(obs, refused)]
    rec = obs.record
    if obs.connect_error is not None or rec is None:
        steps.append(Step("TCP", Verdict.FAIL, obs.connect_error or "not connected"))
        return steps
    steps.append(Step("TCP", Verdict.OK, f"connected to {rec.address} port {rec.port}"))
    if rec.handshake_done:
        summary = f"{rec.version}, cipher {rec.cipher}, ALPN {rec.alpn or 'none'}"
        steps.append(Step("TLS", Verdict.OK, summary))
    else:
        why = f"alert {rec.alert} from the server" if rec.alert else (rec.error or "failed")
        steps.append(Step("TLS", Verdict.FAIL, f"handshake failed: {why}"))
    steps.append(_server_certificate_step(obs, rec))
    steps.append(_request_step(rec))
    steps.append(_match_step(obs, rec, refused))
    steps.append(_sent_step(obs, rec, refused))
    steps.append(_answer_step(obs, rec))
    return steps


def _local_step(obs: Observation, refused: bool) -> Step:
    identity, local = obs.config.identity, obs.local
    if identity is None or local is None:
        return Step("your certificate", Verdict.INFO, "none offered (give one with --cert)")
    summary = f"{local.subject}, issued by {local.issuer}, {local.key}"
    # What is wrong with it fails the visit only if it mattered (it was not even asked for).
    verdict = Verdict.OK if not local.problems else Verdict.FAIL if refused else Verdict.WARN
    details = [*local.problems, *local.notes]
    if identity.chain:
        chain = ", ".join(c.subject.rfc4514_string() for c in identity.chain)
        details.append(f"issuers in the file: {chain}")
    return Step("your certificate", verdict, summary, details)


def _server_certificate_step(obs: Observation, rec: HandshakeRecord) -> Step:
    if not rec.server_chain:
        return Step("server certificate", Verdict.SKIP, "none received")
    leaf = rec.server_chain[0]
    details = [
        f"{c.subject.rfc4514_string()} (issued by {c.issuer.rfc4514_string()})"
        for c in rec.server_chain
    ]
    names = ", ".join(certificate_names(leaf)) or "no names"
    if rec.host_matches:
        details.append(f"host name {rec.host} matches ({names})")
    else:
        details.append(f"host name {rec.host} is NOT among its names ({names})")
    failures = [f for f in rec.verify_failures if f.message != HOST_MISMATCH]
    details += [f"does not verify: {f.message} (depth {f.depth}, {f.subject})" for f in failures]
    details.append(f"trust: {obs.config.trust.source}")
    summary = leaf.subject.rfc4514_string()
    if rec.server_verified:
        return Step("server certificate", Verdict.OK, f"{summary}, verified", details)
    if obs.config.insecure:
        return Step("server certificate", Verdict.WARN, f"{summary}, not verified", details)
    return Step("server certificate", Verdict.FAIL, f"{summary}, NOT verified", details)


def _request_step(rec: HandshakeRecord) -> Step:
    if not rec.certificate_requested:
        return Step("certificate request", Verdict.INFO, "the server did not ask for one")
    if not rec.ca_names:
        return Step(
            "certificate request",
            Verdict.WARN,
            "asked for one, naming no CAs (clients must guess which certificate to send)",
        )
    names = [n.rfc4514_string() for n in rec.ca_names]
    return Step("certificate request", Verdict.OK, f"asked for one from: {'; '.join(names)}")


def _match_step(obs: Observation, rec: HandshakeRecord, refused: bool) -> Step:
    identity = obs.config.identity
    if identity is None or not rec.certificate_requested:
        return Step("issuer accepted", Verdict.SKIP, "nothing to match")
    issuer = identity.certificate.issuer.rfc4514_string()
    if obs.ca_match is None:
        return Step("issuer accepted", Verdict.SKIP, f"{issuer}: the server named no CAs")
    if obs.ca_match:
        return Step("issuer accepted", Verdict.OK, f"{issuer} is one the server named")
    if refused:
        return Step("issuer accepted", Verdict.FAIL, f"{issuer} is NOT one the server named")
    return Step(
        "issuer accepted", Verdict.WARN, f"{issuer} is NOT one the server named, yet it took it"
    )


def _sent_step(obs: Observation, rec: HandshakeRecord, refused: bool) -> Step:
    identity = obs.config.identity
    if rec.certificate_sent and identity is not None:
        return Step("certificate sent", Verdict.OK, identity.subject)
    if not rec.certificate_requested:
        return Step("certificate sent", Verdict.INFO, "none (not asked for)")
    if identity is None:
        if refused:
            return Step("certificate sent", Verdict.FAIL, "none (none offered)")
        return Step("certificate sent", Verdict.INFO, "none (none offered, none needed)")
    return Step("certificate sent", Verdict.FAIL, "none, although one was asked for and offered")


def _answer_step(obs: Observation, rec: HandshakeRecord) -> Step:
    if rec.alert is not None:
        when = "after the handshake" if rec.alert_after_handshake else "during the handshake"
        return Step("server answer", Verdict.FAIL, f"TLS alert {rec.alert} ({when})")
    response = obs.response
    if response is None:
        why = obs.transport_error or rec.error or "no answer"
        return Step("server answer", Verdict.FAIL, why)
    verdict = Verdict.OK if response.status < 400 else Verdict.FAIL
    line = response.first_line
    summary = f"HTTP {response.status} {response.reason}".rstrip()
    details = [f"body: {line}"] if line else []
    page = page_verdict(response)
    if page is not None:
        said = "valid" if page.valid else "NOT valid" + (f": {page.reason}" if page.reason else "")
        details.append(f"{page.source} says the certificate is {said}")
        if not page.valid and rec.certificate_sent:
            verdict = Verdict.FAIL
    details.append(f"server: {server_kind(response).value}")
    return Step("server answer", verdict, summary, details)


def run_doctor(url: str, config: ClientConfig) -> DoctorReport:
    """Observe ``url`` and diagnose: the whole of ``mutls doctor``."""
    obs = observe(url, config)
    finding = diagnose(obs)
    steps = steps_of(obs, finding.problem)
    return DoctorReport(
        url=url,
        steps=steps,
        diagnosis=finding.text,
        fix=finding.fix,
        # one verdict from everything seen: a failed step is never followed by exit 0
        problem=finding.problem or any(s.verdict is Verdict.FAIL for s in steps),
        notes=finding.notes,
        observation=obs,
    )
