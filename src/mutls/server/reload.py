"""Reload: read again everything the server was started from, check it, then switch.

A :class:`Generation` is one whole configuration in force: the :class:`ServerConfig` made
again from its source (the CLI's flags, the files they name, the password given at start),
the TLS context built from it (server identity, trust, CRLs, ticket keys) and the forwarded-
certificate judge. :meth:`Reloader.reload` builds the next one completely, TLS context
included, *before* anything switches; if any part fails (a wrong password, a key that does
not match its certificate, a corrupt CRL or P12) the running generation stays, one line says
why, and the next signal or change tries again.

Who switches: the single process swaps the context new handshakes use
(:meth:`mutls.server.server.Server.reload`); the ``--workers`` supervisor forks a new
generation of workers and retires the old one (:mod:`mutls.server.workers`). Both call
:meth:`Reloader.reload`, the one reload.

Hooks: :func:`on_reload` registers ``hook(event, generation)``, called with ``"start"`` when
a reload begins (with the generation in force), then ``"done"`` (with the new generation's
number: it is built and in force; with ``--workers`` its workers are starting, and the old
ones stop once they serve) or ``"failed"`` (with the one that stays). systemd's
``RELOADING=1``/``READY=1`` and the metrics' trust generation hang there;
:func:`current_generation` is this process's number (a worker inherits its generation's from
the supervisor; one server per process is assumed).

Ticket keys: from ``--ticket-key-file`` (read again at every reload, so a rotated file takes
effect), else random, made once when the :class:`Reloader` is made and kept across reloads,
for the life of the process (a restart makes new ones; files are the way to rotate them).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from mutls.errors import MutlsError
from mutls.server import metrics, systemd
from mutls.server.config import ServerConfig
from mutls.server.log import log
from mutls.tls.options import ClientCertMode
from mutls.tls.tickets import TicketKeys, file_warnings

if TYPE_CHECKING:
    from mutls.apps.forwarded_certificates import ForwardedCertificates
    from mutls.tls.context import ServerContext

ReloadHook = Callable[[str, int], None]
_hooks: list[ReloadHook] = []
_generation = 1


def on_reload(hook: ReloadHook) -> None:
    """Call ``hook(event, generation)`` at every reload: ``"start"``, then ``"done"`` or
    ``"failed"`` (see the module's docstring). A hook that raises is logged, never fatal."""
    _hooks.append(hook)


def current_generation() -> int:
    """The number of the generation this process serves (1 at start, +1 per reload)."""
    return _generation


def _announce(event: str, generation: int) -> None:
    for hook in list(_hooks):
        try:
            hook(event, generation)
        except Exception:
            log.exception("reload hook %r failed", hook)


@dataclass(frozen=True)
class Generation:
    """One configuration in force, everything built."""

    number: int
    config: ServerConfig
    tls_context: ServerContext | None
    forwarding: ForwardedCertificates | None
    #: lines for the log (the start-up warnings of this configuration).
    warnings: tuple[str, ...]

    def describe(self) -> str:
        """What this generation serves, for its log line."""
        parts = []
        context = self.tls_context
        if context is not None:
            cert = context.config.identity.certificate
            parts.append(
                f"server certificate {cert.subject.rfc4514_string()} (serial "
                f"{cert.serial_number:X}, until {cert.not_valid_after_utc:%Y-%m-%d %H:%M} UTC)"
            )
        trust = None
        if context is not None and self.config.client_cert is not ClientCertMode.NONE:
            trust = context.config.trust
        elif self.forwarding is not None:
            trust = self.forwarding.verifier.trust
        if trust is not None:
            parts.append(
                f"trust reloaded ({len(trust.anchors)} anchors, {len(trust.intermediates)} "
                f"intermediates, {len(trust.disallowed)} disallowed, {len(trust.crls)} CRLs)"
            )
        if self.config.ticket_key_files:
            parts.append(f"{len(self.config.ticket_key_files)} ticket keys read")
        return ", ".join(parts) or "configuration reloaded"


def build(config: ServerConfig, number: int, ticket_keys: TicketKeys | None) -> Generation:
    """Build everything ``config`` serves with; raises (MutlsError, mostly) on anything wrong.

    The engine refuses here a configuration that could never accept a client.
    """
    from mutls.server.server import startup_warnings  # server.py imports this module

    tls_context = config.tls_context(ticket_keys=ticket_keys)
    warnings = startup_warnings(config, tls_context)
    forwarding = config.forwarded_certificates()
    if forwarding is not None:
        warnings += forwarding.warnings()
    warnings += file_warnings(config.ticket_key_files)
    return Generation(number, config, tls_context, forwarding, tuple(warnings))


class Reloader:
    """The generations of one server (a single process, or a supervisor and its workers)."""

    def __init__(self, config: ServerConfig) -> None:
        global _generation
        #: random ticket keys, made once, kept across reloads (unused with key files).
        self._random_keys = TicketKeys.random() if config.tls else None
        self.current = build(config, 1, self._keys(config))
        _generation = 1

    def _keys(self, config: ServerConfig) -> TicketKeys | None:
        return config.ticket_keys() or self._random_keys

    def reload(self, why: str) -> Generation | None:
        """Build the next generation from the sources; ``None`` (logged) when it cannot be.
        systemd hears RELOADING=1, then READY=1 (:mod:`mutls.server.systemd`)."""
        with systemd.reloading():
            return self._reload(why)

    def _reload(self, why: str) -> Generation | None:
        global _generation
        running = self.current
        _announce("start", running.number)
        try:
            source = running.config.reload_source
            config = source() if source is not None else running.config.with_changes()
            generation = build(config, running.number + 1, self._keys(config))
        except Exception as exc:  # a reload never stops the server, whatever the file holds
            reason = str(exc) if isinstance(exc, MutlsError) else f"{type(exc).__name__}: {exc}"
            log.error(
                "%s: not reloaded, generation %d keeps serving: %s",
                why,
                running.number,
                " ".join(reason.split()),
            )
            _announce("failed", running.number)
            return None
        self.current = generation
        _generation = generation.number
        metrics.serving(generation.tls_context)  # /metrics shows the certificate and CRLs in force
        metrics.set_trust_generation(generation.number)
        log.info("%s: generation %d serving: %s", why, generation.number, generation.describe())
        for warning in generation.warnings:
            if warning not in running.warnings:
                log.warning("generation %d: %s", generation.number, warning)
        _announce("done", generation.number)
        return generation
