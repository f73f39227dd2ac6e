"""The CLI's reload source: the configuration made again from the same flags and files, with
the password given at start (never asked again), a password file read again."""

from __future__ import annotations

from pathlib import Path

from mutls.cli.serve import build_parser, config_from_args
from mutls.server import ServerConfig
from mutls.server.reload import Reloader, current_generation, on_reload
from mutls.tls import ClientCertMode

from helpers import PASSWORD, PKIFiles


def config_for(*argv: str) -> ServerConfig:
    return config_from_args(build_parser().parse_args(["--port", "0", *argv]))


def test_a_reload_reads_the_p12_again_with_the_start_up_password(
    test_pki: PKIFiles, tmp_path: Path
) -> None:
    p12 = tmp_path / "server.p12"
    test_pki.identities["server"].write_p12(p12, PASSWORD)
    config = config_for("--p12", str(p12), "--pkpwd", PASSWORD)
    assert config.source_files == (str(p12),)
    renewed = test_pki.ca.issue_server("localhost")
    renewed.write_p12(p12, PASSWORD, overwrite=True)
    assert config.reload_source is not None
    again = config.reload_source()
    assert again.identity is not None
    assert again.identity.certificate == renewed.certificate
    assert again.reload_source is not None  # and again, with the same password
    assert again.reload_source().identity is not None


def test_a_password_file_is_read_again(test_pki: PKIFiles, tmp_path: Path) -> None:
    p12, secret = tmp_path / "server.p12", tmp_path / "pass.txt"
    test_pki.identities["server"].write_p12(p12, PASSWORD)
    secret.write_text(PASSWORD + "\n")
    config = config_for("--p12", str(p12), "--pkpwd-file", str(secret))
    assert set(config.source_files) == {str(p12), str(secret)}
    renewed = test_pki.ca.issue_server("localhost")
    renewed.write_p12(p12, "rotated", overwrite=True)
    secret.write_text("rotated\n")
    assert config.reload_source is not None
    assert config.reload_source().identity.certificate == renewed.certificate  # type: ignore[union-attr]


def test_reload_events_and_generations(test_pki: PKIFiles, tmp_path: Path) -> None:
    p12 = tmp_path / "server.p12"
    test_pki.identities["server"].write_p12(p12, PASSWORD)
    events: list[tuple[str, int]] = []
    on_reload(lambda event, number: events.append((event, number)))
    reloader = Reloader(config_for("--p12", str(p12), "--pkpwd", PASSWORD))
    assert current_generation() == 1
    assert reloader.reload("test") is not None
    p12.write_bytes(b"not a P12")
    assert reloader.reload("test") is None
    assert reloader.current.number == current_generation() == 2
    assert events[-4:] == [("start", 1), ("done", 2), ("start", 2), ("failed", 2)]


def test_a_reload_without_a_source_reads_the_trust_again(
    test_pki: PKIFiles, tmp_path: Path
) -> None:
    crl = tmp_path / "root.crl.pem"
    crl.write_bytes(test_pki.crl_path.read_bytes())
    config = ServerConfig(
        identity=test_pki.identities["server"],
        client_cert=ClientCertMode.OPTIONAL,
        client_ca_files=(str(test_pki.ca_cert),),
        crl_files=(str(crl),),
    )
    reloader = Reloader(config)
    assert reloader.reload("test") is not None
    crl.write_text("garbage")
    assert reloader.reload("test") is None  # the CRL was read again, and refused
    assert reloader.current.number == 2
