"""The proxy's local certificate authority: one ECDSA P-256 CA per SIG_HOME, a leaf certificate per host.

Files in the proxy folder (`$SIG_HOME/proxy`):

- `ca.crt`  the CA certificate, PEM, 0644 (users hand it to their clients and trust stores);
- `ca.key`  its private key, PKCS#8 PEM, unencrypted but 0600 in a 0700 folder;
- `ca.lock` the lock that makes two daemons starting at once agree on a single CA.

The CA is created only when neither file exists. A half-present, mismatched or unreadable pair is an error
with a fix, never silently replaced: clients that trust the old CA would start rejecting the proxy.
The original's `ca.key` (PKCS#8 DER inside a PEM labelled "EC PRIVATE KEY") is read as well.

Leaves live in memory only, each with its own key (as in the original): a leaf key on disk would be one
more secret to protect, and one key shared by every host would let a single leaked key impersonate them
all. Measured, minting costs ~1 ms (P-256 keygen ~0.01 ms, signing ~0.2 ms, loading the TLS context
~0.7 ms), so a daemon re-mints at start what it needs instead of caching leaves in files; a pool of
pre-generated keys would save nothing measurable. Leaf files older versions wrote (`leaves/*.pem`, which
held a private key) are removed when the CA is loaded. The chain reaches OpenSSL through an anonymous
in-memory file (memfd), never through the disk where the platform has one.

What the CA may sign (RFC 5280), decided for a CA users may trust system-wide:
- basicConstraints CA:TRUE, pathLen 0 (critical): it can sign leaves only, never another CA;
- keyUsage keyCertSign only (critical): sig never signs CRLs or anything else with it;
- extendedKeyUsage serverAuth: verifiers that treat a CA's EKU as a limit on its chain (OpenSSL, Go,
  Chromium, NSS, Windows, macOS) accept its leaves for TLS servers only, not for code signing, e-mail or
  client authentication, even where the system store trusts the CA for every purpose.
- No nameConstraints. A permitted subtree must be fixed when the CA is issued, but the hosts the proxy
  intercepts are the providers' domains, which change with every `sig login` of a new site; each change
  would need a new CA, and every client and trust store that trusted the old one would then reject the
  proxy (and teach users to re-trust a CA often). Excluded subtrees cannot list "every other site". The
  CA key stays 0600 under SIG_HOME instead, and per-program trust (`sig proxy env`) is the default.
CAs made before these rules (or by the original) are read as they are: re-issuing them silently would
break the clients that trust them.
"""

from __future__ import annotations

import base64
import binascii
import datetime
import hashlib
import ipaddress
import os
import re
import ssl
import threading
from collections import OrderedDict

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.asymmetric.types import CertificatePublicKeyTypes
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from ..core.errors import ErrorCode, SigError
from ..store.files import atomic_write, ensure_dir, file_lock, read_file

CA_COMMON_NAME = "sig Local Proxy CA"
CA_VALIDITY = datetime.timedelta(days=3650)
LEAF_VALIDITY = datetime.timedelta(days=199)  # total span, back-dating included
LEAF_RENEW_BEFORE = datetime.timedelta(days=30)  # re-mint a cached leaf with less validity than this left
CLOCK_SKEW = datetime.timedelta(days=1)
LEAF_CACHE_SIZE = 512
CERT_MODE = 0o644
KEY_MODE = 0o600

_PEM_BLOCK = re.compile(rb"-----BEGIN ([A-Z0-9 ]+)-----\r?\n(.*?)-----END \1-----", re.S)
_DNS_LABEL = re.compile(r"[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?")

_Host = str  # canonical host: lower-case A-label name, or a compressed IP literal


class _Leaf:
    """A leaf certificate (+ the CA certificate) and its own private key, PEM, held in memory only."""

    __slots__ = ("chain_pem", "key_pem", "not_after")

    def __init__(self, chain_pem: bytes, key_pem: bytes, not_after: datetime.datetime) -> None:
        self.chain_pem = chain_pem
        self.key_pem = key_pem
        self.not_after = not_after


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC).replace(microsecond=0)


def _local_user() -> str:
    try:
        import getpass

        user = getpass.getuser()
    except Exception:  # no passwd entry and no LOGNAME/USER in the environment
        user = f"uid {os.getuid()}" if hasattr(os, "getuid") else "unknown"
    try:
        import socket

        node = socket.gethostname()
    except OSError:
        node = ""
    text = f"{user}@{node}" if node else user
    return text[:64] or "unknown"


def _storage_error(message: str, hint: str) -> SigError:
    return SigError(ErrorCode.STORAGE_ERROR, message, hint)


# -- host names ------------------------------------------------------------------------------------------


def normalise_host(host: object) -> _Host:
    """The canonical form of a host a leaf certificate may name, or SigError(USAGE_ERROR).

    IP literals (v4, v6 with or without brackets) come back compressed; names lower case, IDNA (A-labels),
    no trailing dot. Wildcards, control characters, empty labels and all-numeric top labels are refused.
    """
    if not isinstance(host, str):
        raise SigError(ErrorCode.USAGE_ERROR, "a certificate host must be a string")
    shown = host.encode("unicode_escape").decode("ascii")[:80]
    bad = SigError(
        ErrorCode.USAGE_ERROR,
        f"cannot issue a certificate for the host {shown!r}",
        "use a plain host name (no wildcard, port or path) or an IP address",
    )
    h = host.strip()
    if not h or any(c in h for c in "\r\n\0*/\\@ \t"):
        raise bad
    if h.startswith("[") and h.endswith("]"):
        h = h[1:-1]
    if "%" not in h:
        try:
            return ipaddress.ip_address(h).compressed
        except ValueError:
            pass
    h = h.rstrip(".").lower()
    if not h.isascii():
        try:
            h = h.encode("idna").decode("ascii").lower()
        except UnicodeError:
            raise bad from None
    labels = h.split(".")
    if not h or len(h) > 253 or not all(_DNS_LABEL.fullmatch(label) for label in labels):
        raise bad
    if labels[-1].isdigit():  # "127.1", "2130706433": not a name, and not a literal we accept either
        raise bad
    return h


# -- reading keys and certificates -----------------------------------------------------------------------


def load_private_key_lenient(data: bytes) -> ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey:
    """A private key from PEM ("PRIVATE KEY", "EC PRIVATE KEY" with a SEC1 *or* PKCS#8 body) or DER.

    Raises ValueError (TypeError for a passphrase-protected key).
    """
    key: object
    match = _PEM_BLOCK.search(data)
    if match is None:
        key = serialization.load_der_private_key(data, password=None)
    else:
        label, body = match.group(1), match.group(2)
        if label == b"ENCRYPTED PRIVATE KEY" or b"Proc-Type: 4,ENCRYPTED" in body:
            raise TypeError("the key is protected by a passphrase")
        try:
            key = serialization.load_pem_private_key(match.group(0), password=None)
        except (ValueError, UnsupportedAlgorithm):
            # The original writes PKCS#8 DER under an "EC PRIVATE KEY" label: drop the armour and read DER.
            try:
                der = base64.b64decode(b"".join(body.split()), validate=True)
            except (binascii.Error, ValueError):
                raise ValueError("the PEM body is not base64") from None
            key = serialization.load_der_private_key(der, password=None)
    if not isinstance(key, ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey):
        raise ValueError("only EC and RSA keys can sign certificates here")
    return key


def _load_certificate(data: bytes) -> x509.Certificate:
    if b"-----BEGIN" in data:
        return x509.load_pem_x509_certificate(data)
    return x509.load_der_x509_certificate(data)


def _public_der(key: CertificatePublicKeyTypes) -> bytes:
    return key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def _cert_pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


# -- the CA ----------------------------------------------------------------------------------------------


class CertificateAuthority:
    """A loaded CA. Build with `load_or_create(folder)`; thread-safe."""

    def __init__(
        self,
        folder: str,
        certificate: x509.Certificate,
        key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey,
    ) -> None:
        self.folder = folder
        self.cert_path = os.path.join(folder, "ca.crt")
        self.key_path = os.path.join(folder, "ca.key")
        self.certificate = certificate
        self.cert_pem = _cert_pem(certificate)
        self._key = key
        self._leaves: OrderedDict[_Host, _Leaf] = OrderedDict()
        self._contexts: OrderedDict[_Host, tuple[datetime.datetime, ssl.SSLContext]] = OrderedDict()
        self._lock = threading.RLock()
        self._aki = self._authority_key_identifier()

    # -- loading ---------------------------------------------------------------------------------------

    @classmethod
    def load_or_create(cls, folder: str) -> CertificateAuthority:
        """Load `<folder>/ca.crt` + `ca.key`; create both (under `<folder>/ca.lock`) only if neither exists.
        Leaf files older versions left in `<folder>/leaves` (each held a private key) are removed."""
        ca = cls._load_or_create(os.path.abspath(folder))
        _purge_legacy_leaves(os.path.join(ca.folder, "leaves"))
        return ca

    @classmethod
    def _load_or_create(cls, folder: str) -> CertificateAuthority:
        cert_path = os.path.join(folder, "ca.crt")
        key_path = os.path.join(folder, "ca.key")
        if os.path.lexists(cert_path) and os.path.lexists(key_path):
            return cls._load(folder, cert_path, key_path)
        ensure_dir(folder)
        with file_lock(os.path.join(folder, "ca.lock")):
            have_cert, have_key = os.path.lexists(cert_path), os.path.lexists(key_path)
            if have_cert and have_key:
                return cls._load(folder, cert_path, key_path)
            if have_cert or have_key:
                present, missing = (cert_path, key_path) if have_cert else (key_path, cert_path)
                raise _storage_error(
                    f"the proxy CA is incomplete: {present} exists but {missing} is missing",
                    f"restore {missing} from a backup; or, to start over with a new CA, remove {present} "
                    "and run `sig proxy trust` again (clients that trusted the old CA will reject the new one)",
                )
            return cls._create(folder, cert_path, key_path)

    @classmethod
    def _load(cls, folder: str, cert_path: str, key_path: str) -> CertificateAuthority:
        start_over = (
            f"to start over with a new CA, remove both {cert_path} and {key_path}, then run "
            "`sig proxy trust` again (clients that trusted the old CA will reject the new one)"
        )
        cert_data = read_file(cert_path)
        key_data = read_file(key_path)
        if cert_data is None or key_data is None:  # removed between the check and the read
            raise _storage_error(
                f"the proxy CA files changed while being read ({cert_path}, {key_path})",
                "retry; if it persists, " + start_over,
            )
        try:
            cert = _load_certificate(cert_data)
        except ValueError:
            raise _storage_error(
                f"cannot read the proxy CA certificate {cert_path}: not a PEM or DER X.509 certificate",
                f"restore it from a backup; or, {start_over}",
            ) from None
        try:
            key = load_private_key_lenient(key_data)
        except TypeError:
            raise _storage_error(
                f"the proxy CA key {key_path} is protected by a passphrase, which sig cannot use",
                f"write it back without a passphrase (openssl pkey -in {key_path} -out {key_path}.plain), "
                "keep it 0600, and replace the original",
            ) from None
        except (ValueError, UnsupportedAlgorithm):
            raise _storage_error(
                f"cannot read the proxy CA key {key_path}: not a usable private key",
                f"restore it from a backup; or, {start_over}",
            ) from None
        if _public_der(key.public_key()) != _public_der(cert.public_key()):
            raise _storage_error(
                f"the proxy CA key {key_path} does not belong to the certificate {cert_path}",
                f"put back the key that matches the certificate; or, {start_over}",
            )
        try:
            basic = cert.extensions.get_extension_for_class(x509.BasicConstraints).value
        except x509.ExtensionNotFound:
            basic = None
        if basic is None or not basic.ca:
            raise _storage_error(
                f"{cert_path} is not a certificate authority (basicConstraints CA:TRUE is missing)",
                start_over[0].upper() + start_over[1:],
            )
        if cert.not_valid_after_utc <= _now():
            raise _storage_error(
                f"the proxy CA certificate {cert_path} expired on {cert.not_valid_after_utc:%Y-%m-%d}",
                start_over[0].upper() + start_over[1:],
            )
        _tighten_key_mode(key_path)
        return cls(folder, cert, key)

    @classmethod
    def _create(cls, folder: str, cert_path: str, key_path: str) -> CertificateAuthority:
        try:
            os.chmod(folder, 0o700)
        except OSError:
            pass
        key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name(
            [
                x509.NameAttribute(NameOID.COMMON_NAME, CA_COMMON_NAME),
                x509.NameAttribute(NameOID.ORGANIZATION_NAME, "sig local proxy"),
                x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, _local_user()),
            ]
        )
        now = _now()
        ski = x509.SubjectKeyIdentifier.from_public_key(key.public_key())
        cert = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - CLOCK_SKEW)
            .not_valid_after(now + CA_VALIDITY)
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=False,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    key_cert_sign=True,
                    crl_sign=False,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            # Not critical: a verifier that does not know EKU in a CA still reads the rest.
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .add_extension(ski, critical=False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski), critical=False
            )
            .sign(key, hashes.SHA256())
        )
        # Key first: a crash in between leaves "key without certificate", which load_or_create reports.
        atomic_write(key_path, _key_pem(key), KEY_MODE)
        atomic_write(cert_path, _cert_pem(cert), CERT_MODE)
        return cls(folder, cert, key)

    # -- facts -----------------------------------------------------------------------------------------

    def fingerprint_sha256(self) -> str:
        """SHA-256 of the CA certificate (DER), as upper-case hex pairs joined by ':' (openssl's style)."""
        digest = hashlib.sha256(self.certificate.public_bytes(serialization.Encoding.DER)).hexdigest()
        return ":".join(digest[i : i + 2] for i in range(0, len(digest), 2)).upper()

    @property
    def not_valid_after(self) -> datetime.datetime:
        """When the CA certificate expires (UTC)."""
        return self.certificate.not_valid_after_utc

    # -- leaves ----------------------------------------------------------------------------------------

    def leaf_pem(self, host: str) -> tuple[bytes, bytes]:
        """(leaf certificate + CA certificate, leaf private key), PEM, for `host` (a name or IP literal)."""
        leaf = self._leaf(normalise_host(host))
        return leaf.chain_pem, leaf.key_pem

    def server_context(self, host: str) -> ssl.SSLContext:
        """A server-side TLS context (TLS ≥ 1.2, ALPN http/1.1) presenting the leaf for `host`. Cached per host."""
        canonical = normalise_host(host)
        with self._lock:
            leaf = self._leaf(canonical)
            cached = self._contexts.get(canonical)
            if cached is not None and cached[0] == leaf.not_after:
                self._contexts.move_to_end(canonical)
                return cached[1]
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            ctx.minimum_version = ssl.TLSVersion.TLSv1_2
            ctx.set_alpn_protocols(["http/1.1"])
            self._load_chain(ctx, leaf)
            self._contexts[canonical] = (leaf.not_after, ctx)
            while len(self._contexts) > LEAF_CACHE_SIZE:
                self._contexts.popitem(last=False)
            return ctx

    def _load_chain(self, ctx: ssl.SSLContext, leaf: _Leaf) -> None:
        # ssl loads a chain only from a file: an anonymous in-memory one (memfd) where the platform has it,
        # else a private 0600 temp file in the 0700 CA folder, removed straight away.
        data = leaf.chain_pem + leaf.key_pem
        memfd = getattr(os, "memfd_create", None)
        if memfd is not None:
            try:
                fd = memfd("sig-leaf", os.MFD_CLOEXEC)
            except OSError:
                fd = -1
            if fd >= 0:
                try:
                    view = memoryview(data)
                    while view:
                        view = view[os.write(fd, view):]
                    ctx.load_cert_chain(f"/proc/self/fd/{fd}")
                    return
                except OSError:  # no /proc mounted: use the temp file
                    pass
                finally:
                    os.close(fd)
        tmp = os.path.join(self.folder, f".ctx.{os.urandom(8).hex()}.pem")
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, KEY_MODE)
        except OSError as exc:
            raise _storage_error(
                f"cannot write a temporary certificate file in {self.folder}: {exc.strerror}",
                f"make sure {self.folder} is writable by you (chmod u+rwx {self.folder})",
            ) from None
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
            ctx.load_cert_chain(tmp)
        finally:
            try:
                os.unlink(tmp)
            except OSError:
                pass

    def _leaf(self, host: _Host) -> _Leaf:
        with self._lock:
            now = _now()
            leaf = self._leaves.get(host)
            if leaf is not None and self._fresh(leaf.not_after, now):
                self._leaves.move_to_end(host)
                return leaf
            leaf = self._mint(host, now)
            self._leaves[host] = leaf
            while len(self._leaves) > LEAF_CACHE_SIZE:
                self._leaves.popitem(last=False)
            return leaf

    def _fresh(self, not_after: datetime.datetime, now: datetime.datetime) -> bool:
        """Worth keeping: more than 30 days left, or as long as the CA itself lasts (its final month)."""
        return not_after > now and (
            not_after - now > LEAF_RENEW_BEFORE or not_after >= self.certificate.not_valid_after_utc
        )

    def _mint(self, host: _Host, now: datetime.datetime) -> _Leaf:
        key = ec.generate_private_key(ec.SECP256R1())  # one per host, never written anywhere
        public = key.public_key()
        not_before = now - CLOCK_SKEW
        not_after = min(not_before + LEAF_VALIDITY, self.certificate.not_valid_after_utc)
        # A CN holds at most 64 characters; longer names go in the SAN only (made critical, RFC 5280 4.2.1.6).
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, host)] if len(host) <= 64 else [])
        cert = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(self.certificate.subject)
            .public_key(public)
            .serial_number(x509.random_serial_number())
            .not_valid_before(not_before)
            .not_valid_after(not_after)
            .add_extension(x509.SubjectAlternativeName([_san_for(host)]), critical=len(host) > 64)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    key_cert_sign=False,
                    crl_sign=False,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
            .add_extension(self._aki, critical=False)
            .sign(self._key, hashes.SHA256())
        )
        return _Leaf(_cert_pem(cert) + self.cert_pem, _key_pem(key), not_after)

    def _authority_key_identifier(self) -> x509.AuthorityKeyIdentifier:
        try:
            ski = self.certificate.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
        except x509.ExtensionNotFound:  # the original's CA has no SKI
            return x509.AuthorityKeyIdentifier.from_issuer_public_key(self._key.public_key())
        return x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski)


def _san_for(host: _Host) -> x509.GeneralName:
    try:
        return x509.IPAddress(ipaddress.ip_address(host))
    except ValueError:
        return x509.DNSName(host)


def _purge_legacy_leaves(leaves_dir: str) -> None:
    """Remove the leaf cache older versions wrote: every `*.pem` in it held the shared leaf private key."""
    try:
        names = os.listdir(leaves_dir)
    except OSError:
        return
    for name in names:
        if name.endswith(".pem"):
            try:
                os.unlink(os.path.join(leaves_dir, name))
            except OSError:
                pass
    try:
        os.rmdir(leaves_dir)  # only when empty: anything else in it is not ours to remove
    except OSError:
        pass


def _tighten_key_mode(key_path: str) -> None:
    """A CA key readable by group or others (e.g. copied with a loose umask) is narrowed to 0600."""
    try:
        st = os.lstat(key_path)
        if st.st_mode & 0o077 and st.st_uid == os.getuid():
            os.chmod(key_path, KEY_MODE)
    except OSError:
        pass
