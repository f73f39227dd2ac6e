"""One visit of ``mutls doctor``: connect with the certificate offered, ask for the page, and
keep everything that happened (the input of the report's steps and of the diagnosis)."""

from __future__ import annotations

from dataclasses import dataclass

from mutls.client.checks import LocalFindings, chains_to_named_ca, check_identity
from mutls.client.connection import ClientConfig, HandshakeRecord, TLSBroken, TLSClientConnection
from mutls.client.errors import ConnectError
from mutls.client.http import Request, Response, ResponseParser, parse_url


@dataclass
class Observation:
    """Everything one visit learned; the input of :func:`.diagnosis.diagnose`."""

    url: str
    config: ClientConfig
    local: LocalFindings | None = None
    connect_error: str | None = None
    record: HandshakeRecord | None = None
    response: Response | None = None
    transport_error: str | None = None

    @property
    def ca_match(self) -> bool | None:
        """Does the offered certificate chain to a CA the server named? ``None``: unknown."""
        rec, identity = self.record, self.config.identity
        if rec is None or identity is None or not rec.ca_names:
            return None
        return chains_to_named_ca(identity, rec.ca_names)


def observe(url: str, config: ClientConfig) -> Observation:
    """Visit ``url`` once with the offered certificate and record what happened."""
    target = parse_url(url)
    obs = Observation(url, config)
    if config.identity is not None:
        obs.local = check_identity(config.identity)
    with TLSClientConnection(target.host, target.port, config, strict=False) as conn:
        obs.record = conn.record
        try:
            conn.connect()
        except ConnectError as exc:
            obs.connect_error = str(exc)
            return obs
        except TLSBroken:
            return obs
        try:
            conn.sendall(Request(url).to_bytes(target))
            parser = ResponseParser()
            while not parser.complete:
                data = conn.recv()
                if not data:
                    if not parser.end_of_stream():
                        obs.transport_error = "the server closed the connection without answering"
                    break
                parser.feed(data)
            if parser.headers_done:
                obs.response = parser.response
        except TLSBroken:
            pass
        except (ConnectError, ValueError) as exc:
            obs.transport_error = str(exc)
    return obs
