"""The store library: layout on disk, selectors, keys, CRLs, the trust it hands the server,
and Mono's own layout."""

from __future__ import annotations

import hashlib
import os
import stat
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization

from mutls import pki, store
from mutls.store import StoreError, StoreName

from helpers import FIXTURES, PKIFiles


def _der(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.DER)


def test_add_writes_one_pem_file_named_by_sha256(sandbox_home: Path, test_pki: PKIFiles) -> None:
    root = test_pki.ca.certificate
    trust = store.open_store("Trust")
    assert trust.add(root) is store.AddResult.ADDED
    expected = sandbox_home / ".config/mutls/certs/Trust" / f"{pki.fingerprint(root)}.pem"
    assert [p.name for p in trust.directory.iterdir()] == [expected.name]
    assert x509.load_pem_x509_certificate(expected.read_bytes()) == root


def test_duplicate_add_changes_nothing(sandbox_home: Path, test_pki: PKIFiles) -> None:
    trust = store.open_store("Trust")
    trust.add(test_pki.ca.certificate)
    before = {p: p.stat().st_mtime_ns for p in trust.directory.iterdir()}
    assert trust.add(test_pki.ca.certificate) is store.AddResult.ALREADY_PRESENT
    assert {p: p.stat().st_mtime_ns for p in trust.directory.iterdir()} == before


@pytest.mark.parametrize("spelling", ["Trust", "trust", "TRUST", "Root"])
def test_store_names_are_case_insensitive(sandbox_home: Path, spelling: str) -> None:
    assert store.open_store(spelling).name is StoreName.TRUST
    assert store.open_store(spelling).directory.name == "Trust"


def test_unknown_store_names_the_valid_ones(sandbox_home: Path) -> None:
    with pytest.raises(StoreError, match="unknown store 'Trusted': use one of My, AddressBook"):
        store.open_store("Trusted")


def test_find_by_fingerprint_prefix_colons_and_cn(sandbox_home: Path, test_pki: PKIFiles) -> None:
    trust = store.open_store("Trust")
    trust.add_all([test_pki.ca.certificate, test_pki.other_ca.certificate])
    fp = pki.fingerprint(test_pki.ca.certificate)
    colons = ":".join(fp[i : i + 2] for i in range(0, len(fp), 2)).upper()
    for selector in (fp, fp[:8], colons, "my own test ca"):
        assert trust.find(selector).certificate == test_pki.ca.certificate


def test_ambiguous_and_missing_selectors_list_candidates(
    sandbox_home: Path, test_pki: PKIFiles
) -> None:
    twins = [test_pki.ca.issue_client("CN=twin").certificate for _ in range(2)]
    book = store.open_store("AddressBook")
    book.add_all(twins)
    with pytest.raises(StoreError, match="'twin' matches 2 certificates") as ambiguous:
        book.find("twin")
    for cert in twins:
        assert pki.fingerprint(cert)[:16] in str(ambiguous.value)
    with pytest.raises(StoreError, match=r"no certificate in store AddressBook .* 'nobody'"):
        book.find("nobody")
    with pytest.raises(StoreError, match="is empty"):
        store.open_store("CA").find("anything")


def test_a_short_prefix_is_not_a_fingerprint(sandbox_home: Path, test_pki: PKIFiles) -> None:
    trust = store.open_store("Trust")
    trust.add(test_pki.ca.certificate)
    with pytest.raises(StoreError, match="matches"):
        trust.find(pki.fingerprint(test_pki.ca.certificate)[:3])


def test_my_keeps_the_key_0600_beside_the_certificate(
    sandbox_home: Path, test_pki: PKIFiles
) -> None:
    poupou = test_pki.identities["poupou"]
    my = store.open_store("my")
    assert my.add(poupou.certificate, poupou.key) is store.AddResult.ADDED
    entry = my.find("poupou")
    assert entry.key_path is not None
    assert stat.S_IMODE(entry.key_path.stat().st_mode) == 0o600
    assert pki.key_matches_certificate(my.load_key(entry), poupou.certificate)
    my.remove("poupou")
    assert list(my.directory.iterdir()) == []


def test_keys_only_in_my_and_only_the_right_one(sandbox_home: Path, test_pki: PKIFiles) -> None:
    poupou, other = test_pki.identities["poupou"], test_pki.identities["expired"]
    with pytest.raises(StoreError, match="private keys belong in the My store"):
        store.open_store("AddressBook").add(poupou.certificate, poupou.key)
    with pytest.raises(StoreError, match="does not belong"):
        store.open_store("My").add(poupou.certificate, other.key)
    assert not store.open_store("My").directory.exists()


def test_crls_live_in_their_own_directory(sandbox_home: Path, test_pki: PKIFiles) -> None:
    crl = pki.load_crls(test_pki.crl_path)[0]
    trust = store.open_store("Trust")
    assert trust.add_crl(crl).result is store.AddResult.ADDED
    assert trust.add_crl(crl).result is store.AddResult.ALREADY_PRESENT
    (entry,) = trust.crls()
    assert entry.path.parent == trust.directory / "crl"
    assert trust.certificates() == []
    assert trust.find_crl("My Own Test CA").crl == crl
    with pytest.raises(StoreError, match="CRLs belong in the Trust or CA store"):
        store.open_store("My").add_crl(crl)


def _fill_stores(test_pki: PKIFiles, *, machine: bool = False) -> None:
    store.open_store("Trust", machine=machine).add(test_pki.ca.certificate)
    store.open_store("CA", machine=machine).add(test_pki.intermediate.certificate)
    banned = test_pki.identities["disallowed"].certificate
    store.open_store("Disallowed", machine=machine).add(banned)
    store.open_store("Trust", machine=machine).add_crl(pki.load_crls(test_pki.crl_path)[0])


def test_client_trust_assembles_trust_ca_disallowed_and_crls(
    sandbox_home: Path, test_pki: PKIFiles
) -> None:
    _fill_stores(test_pki)
    trust = store.client_trust()
    assert trust.anchors == (test_pki.ca.certificate,)
    assert trust.intermediates == (test_pki.intermediate.certificate,)
    assert trust.disallowed == (test_pki.identities["disallowed"].certificate,)
    assert [c.issuer for c in trust.crls] == [test_pki.ca.certificate.subject]
    assert store.server_trust_anchors() == [test_pki.ca.certificate]


def test_client_ca_files_replace_the_anchors_only(
    sandbox_home: Path, test_pki: PKIFiles, tmp_path: Path
) -> None:
    _fill_stores(test_pki)
    extra_crl = tmp_path / "other.crl"
    pki.write_crl(extra_crl, test_pki.other_ca.crl([]))
    trust = store.client_trust(client_ca_files=[test_pki.other_ca_cert], crl_files=[extra_crl])
    assert trust.anchors == (test_pki.other_ca.certificate,)
    assert trust.intermediates == (test_pki.intermediate.certificate,)
    assert trust.disallowed == (test_pki.identities["disallowed"].certificate,)
    assert len(trust.crls) == 2


def test_user_view_merges_the_machine_store(sandbox_home: Path, test_pki: PKIFiles) -> None:
    store.open_store("Trust", machine=True).add(test_pki.other_ca.certificate)
    store.open_store("Trust").add(test_pki.ca.certificate)
    assert set(store.client_trust().anchors) == {
        test_pki.ca.certificate,
        test_pki.other_ca.certificate,
    }
    assert store.client_trust(machine=True).anchors == (test_pki.other_ca.certificate,)
    assert (
        Path(os.environ["MUTLS_MACHINE_STORE"])
        in store.open_store("Trust", machine=True).directory.parents
    )


def test_a_corrupt_store_file_is_an_error_not_skipped(
    sandbox_home: Path, test_pki: PKIFiles
) -> None:
    _fill_stores(test_pki)
    junk = store.open_store("Disallowed").directory / "junk.pem"
    junk.write_bytes(b"-----BEGIN CERTIFICATE-----\nbroken\n-----END CERTIFICATE-----\n")
    with pytest.raises(StoreError, match=f"{junk}: corrupt certificate file in the store"):
        store.client_trust()


def test_a_store_path_that_is_a_file_is_refused_and_left_alone(
    sandbox_home: Path, test_pki: PKIFiles
) -> None:
    trust = store.open_store("Trust")
    trust.directory.parent.mkdir(parents=True)
    trust.directory.write_bytes(b"not a directory")
    with pytest.raises(StoreError, match="is not a directory"):
        trust.add(test_pki.ca.certificate)
    assert trust.directory.read_bytes() == b"not a directory"


def test_a_failed_multi_add_leaves_no_file_behind(
    sandbox_home: Path, test_pki: PKIFiles, monkeypatch: pytest.MonkeyPatch
) -> None:
    from mutls.errors import PKIError
    from mutls.store import directory

    real = directory.write_file
    calls = []

    def fail_second(path: Path, data: bytes, **kwargs: object) -> Path:
        calls.append(path)
        if len(calls) == 2:
            raise PKIError(f"{path}: cannot write: No space left on device")
        return real(path, data, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(directory, "write_file", fail_second)
    trust = store.open_store("Trust")
    with pytest.raises(StoreError, match=r"No space left on device .*left unchanged"):
        trust.add_all([test_pki.ca.certificate, test_pki.other_ca.certificate])
    assert list(trust.directory.iterdir()) == []  # no certificate, no temporary file


# -- Mono's layout ------------------------------------------------------------------------------


def test_mono_names_a_certificate_without_ski_by_its_tbs_hash() -> None:
    # Mono's X509Certificate.Hash: the TBSCertificate hashed with the signature's hash
    # (SHA-512 for Mono 6.8's makecert), not the SHA-1 thumbprint people expect.
    root = pki.load_certificate(FIXTURES / "root.cer")
    expected = hashlib.sha512(root.tbs_certificate_bytes).hexdigest().upper()
    assert store.mono_file_name(root) == f"tbp-{expected}.cer"
    assert pki.fingerprint(root, "sha1").upper() not in store.mono_file_name(root)


def test_mono_names_a_certificate_with_ski_by_ski_and_serial(test_pki: PKIFiles) -> None:
    cert = test_pki.ca.certificate
    ski = cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value.digest
    serial = cert.serial_number.to_bytes((cert.serial_number.bit_length() + 8) // 8, "big")
    assert store.mono_file_name(cert) == f"ski-{(ski + serial[::-1]).hex().upper()}.cer"


#: the "Unique Hash" Mono 6.8.0.105's own `certmgr -list -c Trust` printed for FIXTURES/root.cer
MONO_ROOT_HASH = (
    "E95EA65362D67E2E9734467464CD627799F4248843B5D79082D2AA2A7071BF17"
    "12DCF6581BC5092CD91575EFB13AEF4B18055A3BF00603D2F61EBC89E5EC0623"
)


def test_mono_hash_is_what_monos_certmgr_prints_and_none_where_it_prints_none(
    test_pki: PKIFiles,
) -> None:
    assert store.mono_hash(pki.load_certificate(FIXTURES / "root.cer")) == MONO_ROOT_HASH
    # Mono hashes RSA and DSA signatures only: its certmgr lists an ECDSA root with an empty
    # Unique Hash, and its -del can name nothing for it.
    assert store.mono_hash(test_pki.ca.certificate) is None
    ed = pki.CertificateAuthority.create("CN=ed", key=pki.KeySpec.parse("ed25519"))
    assert store.mono_hash(ed.certificate) is None
    assert store.mono_file_name(ed.certificate).startswith("ski-")


def test_reads_a_store_written_the_way_mono_writes_it(
    sandbox_home: Path, test_pki: PKIFiles
) -> None:
    mono_trust = sandbox_home / ".config" / ".mono" / "certs" / "Trust"
    mono_trust.mkdir(parents=True)
    mono_root = pki.load_certificate(FIXTURES / "root.cer")
    (mono_trust / store.mono_file_name(mono_root)).write_bytes((FIXTURES / "root.cer").read_bytes())
    ours = test_pki.ca.certificate
    (mono_trust / store.mono_file_name(ours)).write_bytes(_der(ours))
    crl = test_pki.ca.crl([])
    crl_der = crl.public_bytes(serialization.Encoding.DER)
    (mono_trust / f"tbp-{crl.fingerprint(hashes.SHA256()).hex().upper()}.crl").write_bytes(crl_der)

    opened = store.open_store("trust", mono=True)
    assert {e.certificate for e in opened.certificates()} == {mono_root, ours}
    assert opened.find(MONO_ROOT_HASH[:12]).certificate == mono_root
    assert [e.crl for e in opened.crls()] == [crl]
    assert store.open_store("Trust").certificates() == []  # mutls's own store is separate


def test_writes_mono_layout_when_asked(sandbox_home: Path, test_pki: PKIFiles) -> None:
    mono_ca = store.open_store("CA", mono=True)
    mono_ca.add(test_pki.intermediate.certificate)
    path = mono_ca.directory / store.mono_file_name(test_pki.intermediate.certificate)
    assert mono_ca.directory == sandbox_home / ".config/.mono/certs/CA"
    assert path.read_bytes() == _der(test_pki.intermediate.certificate)
    assert mono_ca.add(test_pki.intermediate.certificate) is store.AddResult.ALREADY_PRESENT
    mono_ca.remove("My Intermediate CA")
    assert not path.exists()
    poupou = test_pki.identities["poupou"]
    mono_my = store.open_store("My", mono=True)
    with pytest.raises(StoreError, match="Mono's store keeps no private keys"):
        mono_my.add(poupou.certificate, poupou.key)
    mono_my.add(poupou.certificate)  # a certificate alone is fine, and lists without a key
    assert [e.key_path for e in mono_my.certificates()] == [None]
