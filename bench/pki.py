"""The benchmark's own PKI, made with ``mutls.pki``: CA, server and client, for each key type."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from mutls import pki

#: the key types the benchmark measures, by the name used in results.
KEY_TYPES: dict[str, pki.KeySpec] = {
    "ecdsa-p256": pki.KeySpec(pki.KeyType.EC_P256),
    "rsa-2048": pki.KeySpec(pki.KeyType.RSA, 2048),
}


@dataclass(frozen=True)
class BenchPKI:
    """The PEM files of one key type: the CA, the server's and the client's certificate and key."""

    key_type: str
    ca: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path

    @classmethod
    def at(cls, directory: Path, key_type: str) -> BenchPKI:
        """The files :func:`make_pki` writes in ``directory`` (another process can find them)."""
        return cls(
            key_type=key_type,
            ca=directory / "ca.pem",
            server_cert=directory / "server.pem",
            server_key=directory / "server.key",
            client_cert=directory / "client.pem",
            client_key=directory / "client.key",
        )


def make_pki(directory: Path, key_type: str) -> BenchPKI:
    """Write a CA, a server certificate for localhost/127.0.0.1 and a client certificate."""
    spec = KEY_TYPES[key_type]
    directory.mkdir(parents=True, exist_ok=True)
    ca = pki.CertificateAuthority.create(f"CN=mutls bench CA {key_type}", key=spec)
    server = ca.issue_server("localhost", "127.0.0.1", key=spec)
    client = ca.issue_client("CN=bench-client", key=spec)
    files = BenchPKI.at(directory, key_type)
    pki.write_certificate(files.ca, ca.certificate, overwrite=True)
    server.write_pem(files.server_cert, files.server_key, overwrite=True)
    client.write_pem(files.client_cert, files.client_key, overwrite=True)
    return files
