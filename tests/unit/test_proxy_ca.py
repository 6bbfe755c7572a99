"""proxy/ca.py: the local CA (creation, modes, lenient reading of the original's key) and per-host leaves."""

from __future__ import annotations

import base64
import datetime
import ipaddress
import multiprocessing
import os
import runpy
import shutil
import socket
import ssl
import stat
import threading
import time
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from sigcli.core.errors import ErrorCode, SigError
from sigcli.proxy.ca import CertificateAuthority, load_private_key_lenient, normalise_host


def _mode(path: str | Path) -> int:
    return stat.S_IMODE(os.lstat(path).st_mode)


def _leaf_cert(chain_pem: bytes) -> x509.Certificate:
    return x509.load_pem_x509_certificates(chain_pem)[0]


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    return tmp_path / "home" / ".sig" / "proxy"


@pytest.fixture
def upstream_ca(tmp_path: Path, fixtures_dir: Path) -> Path:
    src = fixtures_dir / "sig-home" / ".sig" / "proxy"
    dst = tmp_path / "upstream-proxy"
    dst.mkdir()
    for name in ("ca.crt", "ca.key"):
        shutil.copy2(src / name, dst / name)
    return dst


# -- creation ------------------------------------------------------------------------------------------


def test_create_files_modes_and_ca_properties(folder: Path) -> None:
    ca = CertificateAuthority.load_or_create(str(folder))
    assert ca.cert_path == str(folder / "ca.crt") and ca.key_path == str(folder / "ca.key")
    assert _mode(folder) == 0o700
    assert _mode(ca.key_path) == 0o600
    assert _mode(ca.cert_path) == 0o644
    assert not [p for p in os.listdir(folder) if ".tmp." in p]

    key_pem = Path(ca.key_path).read_bytes()
    assert key_pem.startswith(b"-----BEGIN PRIVATE KEY-----")
    key = serialization.load_pem_private_key(key_pem, password=None)
    assert isinstance(key, ec.EllipticCurvePrivateKey) and key.curve.name == "secp256r1"

    cert = x509.load_pem_x509_certificate(Path(ca.cert_path).read_bytes())
    assert cert.subject == cert.issuer
    assert cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "sig Local Proxy CA"
    assert cert.subject.get_attributes_for_oid(NameOID.ORGANIZATIONAL_UNIT_NAME)[0].value
    bc = cert.extensions.get_extension_for_class(x509.BasicConstraints)
    assert bc.critical and bc.value.ca and bc.value.path_length == 0
    ku = cert.extensions.get_extension_for_class(x509.KeyUsage)
    assert ku.critical and ku.value.key_cert_sign
    assert not any(getattr(ku.value, name) for name in (
        "crl_sign", "digital_signature", "content_commitment", "key_encipherment", "data_encipherment",
        "key_agreement"))
    eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage)
    assert list(eku.value) == [ExtendedKeyUsageOID.SERVER_AUTH]
    with pytest.raises(x509.ExtensionNotFound):  # see ca.py: constraints would force a new CA per provider
        cert.extensions.get_extension_for_class(x509.NameConstraints)
    cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier)
    now = datetime.datetime.now(datetime.UTC)
    assert now - datetime.timedelta(days=2) < cert.not_valid_before_utc < now - datetime.timedelta(hours=23)
    span = cert.not_valid_after_utc - now
    assert datetime.timedelta(days=3649) < span <= datetime.timedelta(days=3650)
    assert _public(key.public_key()) == _public(cert.public_key())

    fp = ca.fingerprint_sha256()
    assert len(fp) == 95 and fp.count(":") == 31 and fp == fp.upper()


def _public(key: object) -> bytes:
    return key.public_bytes(  # type: ignore[attr-defined]
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def test_reload_gives_the_same_ca(folder: Path) -> None:
    first = CertificateAuthority.load_or_create(str(folder))
    before = (Path(first.cert_path).read_bytes(), Path(first.key_path).read_bytes())
    second = CertificateAuthority.load_or_create(str(folder))
    assert second.fingerprint_sha256() == first.fingerprint_sha256()
    assert (Path(first.cert_path).read_bytes(), Path(first.key_path).read_bytes()) == before


@pytest.mark.parametrize("keep", ["ca.crt", "ca.key"])
def test_only_one_file_is_an_error_and_nothing_is_written(folder: Path, keep: str) -> None:
    CertificateAuthority.load_or_create(str(folder))
    gone = "ca.key" if keep == "ca.crt" else "ca.crt"
    (folder / gone).unlink()
    kept = (folder / keep).read_bytes()
    with pytest.raises(SigError) as info:
        CertificateAuthority.load_or_create(str(folder))
    assert info.value.code == ErrorCode.STORAGE_ERROR
    assert gone in info.value.message and info.value.hint
    assert (folder / keep).read_bytes() == kept
    assert not (folder / gone).exists()


def test_mismatched_key_is_an_error_and_nothing_is_overwritten(folder: Path, tmp_path: Path) -> None:
    CertificateAuthority.load_or_create(str(folder))
    other = CertificateAuthority.load_or_create(str(tmp_path / "other"))
    shutil.copy2(other.key_path, folder / "ca.key")
    before = {name: (folder / name).read_bytes() for name in ("ca.crt", "ca.key")}
    with pytest.raises(SigError) as info:
        CertificateAuthority.load_or_create(str(folder))
    assert info.value.code == ErrorCode.STORAGE_ERROR
    assert "does not belong" in info.value.message and "remove both" in info.value.hint
    assert {name: (folder / name).read_bytes() for name in ("ca.crt", "ca.key")} == before


@pytest.mark.parametrize("name", ["ca.crt", "ca.key"])
def test_garbage_file_is_an_error(folder: Path, name: str) -> None:
    CertificateAuthority.load_or_create(str(folder))
    (folder / name).write_bytes(b"not a pem\n")
    with pytest.raises(SigError) as info:
        CertificateAuthority.load_or_create(str(folder))
    assert info.value.code == ErrorCode.STORAGE_ERROR
    assert (folder / name).read_bytes() == b"not a pem\n"


def test_unreadable_key_is_an_error(folder: Path) -> None:
    CertificateAuthority.load_or_create(str(folder))
    key = folder / "ca.key"
    key.unlink()
    key.mkdir()  # unreadable as a file, even for root
    with pytest.raises(SigError) as info:
        CertificateAuthority.load_or_create(str(folder))
    assert info.value.code == ErrorCode.STORAGE_ERROR


# -- the original's files --------------------------------------------------------------------------------


def test_upstream_ca_loads_and_signs_a_leaf(upstream_ca: Path) -> None:
    cert_before = (upstream_ca / "ca.crt").read_bytes()
    key_before = (upstream_ca / "ca.key").read_bytes()
    assert key_before.startswith(b"-----BEGIN EC PRIVATE KEY-----")
    with pytest.raises(ValueError):  # the quirk: cryptography's PEM reader refuses it
        serialization.load_pem_private_key(key_before, password=None)

    ca = CertificateAuthority.load_or_create(str(upstream_ca))
    assert (upstream_ca / "ca.crt").read_bytes() == cert_before
    assert (upstream_ca / "ca.key").read_bytes() == key_before
    upstream_cert = x509.load_pem_x509_certificate(cert_before)
    assert ca.certificate == upstream_cert

    chain, _key = ca.leaf_pem("api.example.com")
    leaf = _leaf_cert(chain)
    leaf.verify_directly_issued_by(upstream_cert)
    assert leaf.issuer == upstream_cert.subject
    aki = leaf.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier).value
    assert aki.key_identifier == x509.SubjectKeyIdentifier.from_public_key(upstream_cert.public_key()).digest


def test_key_formats_read_leniently() -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    want = _public(key.public_key())
    pkcs8_der = key.private_bytes(
        serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    body = base64.encodebytes(pkcs8_der).replace(b"\n", b"")
    lines = b"\n".join(body[i : i + 64] for i in range(0, len(body), 64))
    upstream_style = b"-----BEGIN EC PRIVATE KEY-----\n" + lines + b"\n-----END EC PRIVATE KEY-----\n"
    forms = [
        upstream_style,
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.TraditionalOpenSSL,
            serialization.NoEncryption(),
        ),
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        ),
        pkcs8_der,
    ]
    for data in forms:
        assert _public(load_private_key_lenient(data).public_key()) == want
    encrypted = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(b"pw"),
    )
    with pytest.raises(TypeError):
        load_private_key_lenient(encrypted)
    with pytest.raises(ValueError):
        load_private_key_lenient(b"-----BEGIN EC PRIVATE KEY-----\n!!!!\n-----END EC PRIVATE KEY-----\n")


# -- leaves ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("host", "san"),
    [
        ("Api.Example.COM.", x509.DNSName("api.example.com")),
        ("localhost", x509.DNSName("localhost")),
        ("127.0.0.1", x509.IPAddress(ipaddress.ip_address("127.0.0.1"))),
        ("[::1]", x509.IPAddress(ipaddress.ip_address("::1"))),
        ("2001:DB8::1", x509.IPAddress(ipaddress.ip_address("2001:db8::1"))),
        ("bücher.example", x509.DNSName("xn--bcher-kva.example")),
    ],
)
def test_leaf_properties(folder: Path, host: str, san: x509.GeneralName) -> None:
    ca = CertificateAuthority.load_or_create(str(folder))
    chain, key_pem = ca.leaf_pem(host)
    certs = x509.load_pem_x509_certificates(chain)
    assert len(certs) == 2 and certs[1] == ca.certificate
    leaf = certs[0]
    leaf.verify_directly_issued_by(ca.certificate)
    assert list(leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value) == [san]
    cn = leaf.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value
    assert cn == normalise_host(host)
    eku = leaf.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(eku) == [ExtendedKeyUsageOID.SERVER_AUTH]
    ku = leaf.extensions.get_extension_for_class(x509.KeyUsage).value
    assert ku.digital_signature and not ku.key_cert_sign
    assert not leaf.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    aki = leaf.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier).value
    ski = ca.certificate.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    assert aki.key_identifier == ski.digest
    assert leaf.not_valid_after_utc - leaf.not_valid_before_utc <= datetime.timedelta(days=199)
    now = datetime.datetime.now(datetime.UTC)
    assert leaf.not_valid_before_utc < now - datetime.timedelta(hours=23)
    key = serialization.load_pem_private_key(key_pem, password=None)
    assert isinstance(key, ec.EllipticCurvePrivateKey) and key.curve.name == "secp256r1"
    assert _public(key.public_key()) == _public(leaf.public_key())
    assert leaf.serial_number != ca.certificate.serial_number


def test_long_host_gets_no_common_name(folder: Path) -> None:
    ca = CertificateAuthority.load_or_create(str(folder))
    host = ".".join(["a" * 30] * 3) + ".example"
    leaf = _leaf_cert(ca.leaf_pem(host)[0])
    assert not leaf.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    san = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName)
    assert san.critical and list(san.value) == [x509.DNSName(host)]


@pytest.mark.parametrize(
    "host",
    [
        "",
        " ",
        "*.example.com",
        "a\r\nb",
        "a\0b",
        "exa mple.com",
        "a..b",
        "-",
        "127.1",
        "a/b",
        "x" * 64 + ".com",
        "fe80::1%eth0",
        "\udcff.example",
        "host:443",
    ],
)
def test_bad_hosts_are_refused(folder: Path, host: str) -> None:
    ca = CertificateAuthority.load_or_create(str(folder))
    with pytest.raises(SigError) as info:
        ca.leaf_pem(host)
    assert info.value.code == ErrorCode.USAGE_ERROR
    assert "\r" not in info.value.message and "\n" not in info.value.message
    assert not (folder / "leaves").exists()


def test_leaves_have_their_own_keys_and_stay_in_memory(folder: Path) -> None:
    ca = CertificateAuthority.load_or_create(str(folder))
    first = ca.leaf_pem("Example.com")
    assert ca.leaf_pem("example.com") == first  # cached per host
    other = ca.leaf_pem("other.example")
    v6 = ca.leaf_pem("::1")
    keys = {first[1], other[1], v6[1]}
    assert len(keys) == 3, "every host has its own leaf key"
    for chain, key_pem in (first, other, v6):
        key = serialization.load_pem_private_key(key_pem, password=None)
        assert _public(key.public_key()) == _public(_leaf_cert(chain).public_key())
    # nothing but the CA files on disk: no leaf, no leaf key, no temporary chain file
    ca.server_context("example.com")
    assert sorted(os.listdir(folder)) == ["ca.crt", "ca.key", "ca.lock"]

    # the next daemon mints anew (a different key), signed by the same CA
    again = CertificateAuthority.load_or_create(str(folder)).leaf_pem("example.com")
    assert again[1] != first[1]
    _leaf_cert(again[0]).verify_directly_issued_by(ca.certificate)


def test_legacy_leaf_files_with_keys_are_removed(folder: Path) -> None:
    """Older versions cached `leaves/<host>.pem` = chain + the one leaf key every host shared."""
    ca = CertificateAuthority.load_or_create(str(folder))
    chain, key_pem = ca.leaf_pem("example.com")
    leaves = folder / "leaves"
    leaves.mkdir(mode=0o700)
    for name in ("example.com.pem", "++1.pem", ".ctx.0123abcd.pem"):
        (leaves / name).write_bytes(chain + key_pem)
    CertificateAuthority.load_or_create(str(folder))
    assert not leaves.exists()
    # a folder holding something that is not ours is kept, minus the key files
    leaves.mkdir(mode=0o700)
    (leaves / "a.pem").write_bytes(chain + key_pem)
    (leaves / "notes.txt").write_text("mine")
    CertificateAuthority.load_or_create(str(folder))
    assert os.listdir(leaves) == ["notes.txt"]


def test_leaf_near_expiry_is_reminted(folder: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from sigcli.proxy import ca as ca_module

    ca = CertificateAuthority.load_or_create(str(folder))
    first = ca.leaf_pem("example.com")
    first_ctx = ca.server_context("example.com")
    real_now = ca_module._now
    monkeypatch.setattr(ca_module, "_now", lambda: real_now() + datetime.timedelta(days=170))
    second = ca.leaf_pem("example.com")
    assert second != first
    leaf = _leaf_cert(second[0])
    assert leaf.not_valid_after_utc > _leaf_cert(first[0]).not_valid_after_utc
    assert ca.server_context("example.com") is not first_ctx


def test_server_context_without_memfd(folder: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Where there is no memfd, the chain goes through a 0600 temp file that is removed at once."""
    monkeypatch.delattr(os, "memfd_create", raising=False)
    ca = CertificateAuthority.load_or_create(str(folder))
    _handshake(ca, "localhost")
    assert sorted(os.listdir(folder)) == ["ca.crt", "ca.key", "ca.lock"]


# -- TLS -------------------------------------------------------------------------------------------------


def _handshake(ca: CertificateAuthority, connect_as: str) -> dict:
    server_ctx = ca.server_context(connect_as)
    client_ctx = ssl.create_default_context(cafile=ca.cert_path)
    a, b = socket.socketpair()
    a.settimeout(5)
    b.settimeout(5)
    errors: list[BaseException] = []

    def serve() -> None:
        try:
            with server_ctx.wrap_socket(a, server_side=True) as tls:
                tls.sendall(tls.recv(5) + b"!")
        except BaseException as exc:
            errors.append(exc)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        with client_ctx.wrap_socket(b, server_hostname=connect_as) as tls:
            tls.sendall(b"hello")
            assert tls.recv(16) == b"hello!"
            peer = tls.getpeercert()
            assert tls.selected_alpn_protocol() is None
    finally:
        thread.join(5)
    assert not errors, errors
    return peer


@pytest.mark.parametrize("host", ["localhost", "127.0.0.1", "::1"])
def test_tls_handshake_verifies_host_and_ip(folder: Path, host: str) -> None:
    ca = CertificateAuthority.load_or_create(str(folder))
    peer = _handshake(ca, host)
    kind = "DNS" if host == "localhost" else "IP Address"
    wanted = host if kind == "DNS" else ("0:0:0:0:0:0:0:1" if host == "::1" else host)
    assert (kind, wanted) in peer["subjectAltName"] or (kind, wanted.upper()) in peer["subjectAltName"]
    assert ca.server_context(host) is ca.server_context(host)
    assert sorted(os.listdir(folder)) == ["ca.crt", "ca.key", "ca.lock"]


def test_tls_with_the_upstream_ca(upstream_ca: Path) -> None:
    ca = CertificateAuthority.load_or_create(str(upstream_ca))
    _handshake(ca, "127.0.0.1")


def test_tls_leaf_for_another_host_is_rejected(folder: Path) -> None:
    ca = CertificateAuthority.load_or_create(str(folder))
    server_ctx = ca.server_context("example.com")
    client_ctx = ssl.create_default_context(cafile=ca.cert_path)
    a, b = socket.socketpair()
    a.settimeout(5)
    b.settimeout(5)

    def serve() -> None:
        try:
            server_ctx.wrap_socket(a, server_side=True).close()
        except (ssl.SSLError, OSError):
            pass

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        with pytest.raises(ssl.SSLCertVerificationError):
            client_ctx.wrap_socket(b, server_hostname="localhost")
    finally:
        b.close()
        thread.join(5)
        a.close()


def test_server_context_from_threads(folder: Path) -> None:
    ca = CertificateAuthority.load_or_create(str(folder))
    results: list[ssl.SSLContext] = []
    lock = threading.Lock()

    def worker() -> None:
        ctx = ca.server_context("threads.example")
        with lock:
            results.append(ctx)

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert len(results) == 8 and all(ctx is results[0] for ctx in results)


# -- several processes -----------------------------------------------------------------------------------

_WORKER = """
import sys
from sigcli.proxy.ca import CertificateAuthority

folder, out = SIG_WORKER_ARGS
ca = CertificateAuthority.load_or_create(folder)
with open(out, "w") as fh:
    fh.write(ca.fingerprint_sha256())
"""


def test_concurrent_creation_from_several_processes_yields_one_ca(tmp_path: Path, folder: Path) -> None:
    worker = tmp_path / "ca_worker.py"
    worker.write_text(_WORKER)
    workers = 4
    ctx = multiprocessing.get_context("spawn")
    procs = [
        ctx.Process(
            target=runpy.run_path,
            args=(str(worker),),
            kwargs={
                "init_globals": {"SIG_WORKER_ARGS": (str(folder), str(tmp_path / f"fp{i}.txt"))},
                "run_name": "__sig_worker__",
            },
        )
        for i in range(workers)
    ]
    for proc in procs:
        proc.start()
    deadline = time.monotonic() + 60
    try:
        for proc in procs:
            proc.join(timeout=max(0.1, deadline - time.monotonic()))
    finally:
        stuck = [proc for proc in procs if proc.is_alive()]
        for proc in stuck:
            proc.kill()
            proc.join(timeout=5)
    assert not stuck, "worker processes did not finish in time"
    assert [proc.exitcode for proc in procs] == [0] * workers
    prints = {(tmp_path / f"fp{i}.txt").read_text() for i in range(workers)}
    assert prints == {CertificateAuthority.load_or_create(str(folder)).fingerprint_sha256()}
    assert sorted(os.listdir(folder)) == ["ca.crt", "ca.key", "ca.lock"]
