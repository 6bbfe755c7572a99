"""The proxy CA through the real daemon: every host gets a leaf with its own key, no private key is written
besides the CA's, old leaf files holding the shared key are removed, and `sig proxy trust` says what
trusting the CA system-wide means."""

from __future__ import annotations

import base64
import ipaddress
import socket
import ssl
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from harness.servers import ServerHandle
from harness.sigproc import Sig


def _leaf_through_proxy(env: dict[str, str], host: str, port: int) -> x509.Certificate:
    """CONNECT host:port through the proxy and return the leaf it presents (verified against sig's CA)."""
    creds, _, hostport = env["HTTPS_PROXY"][len("http://"):].rpartition("@")
    phost, pport = hostport.rsplit(":", 1)
    auth = base64.b64encode(creds.encode()).decode()
    sock = socket.create_connection((phost, int(pport)), timeout=30)
    try:
        sock.sendall(f"CONNECT {host}:{port} HTTP/1.1\r\nHost: {host}:{port}\r\n"
                     f"Proxy-Authorization: Basic {auth}\r\n\r\n".encode())
        head = b""
        while b"\r\n\r\n" not in head:
            data = sock.recv(4096)
            assert data, "the proxy closed the CONNECT"
            head += data
        assert head.startswith(b"HTTP/1.1 200"), head
        ctx = ssl.create_default_context(cafile=env["SSL_CERT_FILE"])
        with ctx.wrap_socket(sock, server_hostname=host) as tls:
            der = tls.getpeercert(binary_form=True)
    finally:
        sock.close()
    assert der is not None
    return x509.load_der_x509_certificate(der)


def _public(cert: x509.Certificate) -> bytes:
    return cert.public_key().public_bytes(serialization.Encoding.DER,
                                          serialization.PublicFormat.SubjectPublicKeyInfo)


def _private_key_files(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*")
                  if p.is_file() and b"PRIVATE KEY" in p.read_bytes())


def test_each_host_has_its_own_leaf_key_and_none_is_written(proxied: tuple[Sig, dict[str, str]],
                                                            https_echo: ServerHandle) -> None:
    sig, env = proxied
    cfg = sig.home / "config.yaml"
    cfg.write_text(cfg.read_text().replace("      - 127.0.0.1\n", "      - 127.0.0.1\n      - localhost\n", 1))
    by_ip = _leaf_through_proxy(env, "127.0.0.1", https_echo.port)
    by_name = _leaf_through_proxy(env, "localhost", https_echo.port)
    assert list(by_ip.extensions.get_extension_for_class(x509.SubjectAlternativeName).value) \
        == [x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
    assert list(by_name.extensions.get_extension_for_class(x509.SubjectAlternativeName).value) \
        == [x509.DNSName("localhost")]
    assert _public(by_ip) != _public(by_name), "one leaf key shared by two hosts"
    # the same host again: the cached leaf (same key) while the daemon runs
    assert _public(_leaf_through_proxy(env, "localhost", https_echo.port)) == _public(by_name)

    proxy_dir = sig.home / "proxy"
    assert not (proxy_dir / "leaves").exists()
    assert _private_key_files(proxy_dir) == ["ca.key"]


def test_old_leaf_files_with_the_shared_key_are_removed_at_start(sig_init: Sig, https_echo: ServerHandle) -> None:
    sig_init("proxy", "trust", check=0)  # creates the CA
    leaves = sig_init.home / "proxy" / "leaves"
    leaves.mkdir(mode=0o700)
    (leaves / "127.0.0.1.pem").write_bytes(b"-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"
                                          b"-----BEGIN PRIVATE KEY-----\nMIGH\n-----END PRIVATE KEY-----\n")
    try:
        sig_init("proxy", "start", "--port", "0", check=0)
        assert not leaves.exists()
        assert _private_key_files(sig_init.home / "proxy") == ["ca.key"]
    finally:
        sig_init("proxy", "stop", check=None)


def test_trust_explains_system_wide_trust_and_prefers_per_program(sig_init: Sig) -> None:
    r = sig_init("proxy", "trust", check=0)
    key = sig_init.home / "proxy" / "ca.key"
    assert r.out.strip() == str(sig_init.home / "proxy" / "ca.crt")
    text = " ".join(r.err.split())
    assert "Prefer per-program trust" in text and "sig proxy env" in text
    assert "any program of any user" in text and "every certificate this CA signs" in text
    assert f"{key} (0600)" in text
    assert "update-ca-certificates" in text and "To undo" in text
    assert oct(key.stat().st_mode & 0o777) == "0o600"
    ca = x509.load_pem_x509_certificate((sig_init.home / "proxy" / "ca.crt").read_bytes())
    assert ca.extensions.get_extension_for_class(x509.BasicConstraints).value.path_length == 0
    ku = ca.extensions.get_extension_for_class(x509.KeyUsage).value
    assert ku.key_cert_sign and not ku.crl_sign and not ku.digital_signature
