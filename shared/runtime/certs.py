"""Local development certificates: a CA, and a leaf it signs, for HTTPS, HTTP/3 and the QUIC data plane.

`make certs` (and `tessera up`, and any service that needs one) makes them under
<data_dir>/certs when no certificate is configured: a CA (``dev-ca.pem``) and a
leaf for localhost, 127.0.0.1, ::1, this host's name and any extra names
(``dev-cert.pem``, leaf then CA; ``dev-key.pem``), valid for a year and replaced
when about to expire. Mesh clients verify servers against the CA, so checks stay
on; browsers and other clients must be told to trust the CA. For development only.

Several processes may start at once; a file lock makes sure one of them writes
the files and the others read the same ones.
"""

from __future__ import annotations

import argparse
import datetime as dt
import fcntl
import ipaddress
import socket
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from shared.runtime.files import atomic_write

VALID_DAYS = 365


@dataclass(frozen=True)
class DevCerts:
    certfile: Path  # leaf, then the CA
    keyfile: Path
    cafile: Path


def _still_valid(cert_path: Path, names: Iterable[str], days: int = 7) -> bool:
    try:
        cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except (OSError, ValueError, x509.ExtensionNotFound):
        return False
    have = {str(v) for v in san.get_values_for_type(x509.DNSName)} | {str(v) for v in san.get_values_for_type(x509.IPAddress)}
    return set(names) <= have and cert.not_valid_after_utc > dt.datetime.now(dt.UTC) + dt.timedelta(days=days)


def _san(names: Iterable[str]) -> x509.SubjectAlternativeName:
    entries: list[x509.GeneralName] = []
    for name in names:
        try:
            entries.append(x509.IPAddress(ipaddress.ip_address(name)))
        except ValueError:
            entries.append(x509.DNSName(name))
    return x509.SubjectAlternativeName(entries)


def _write_private(path: Path, data: bytes) -> None:
    atomic_write(path, data, 0o600)


def _write(path: Path, data: bytes) -> None:
    atomic_write(path, data)


def _make(folder: Path, names: list[str]) -> None:
    now = dt.datetime.now(dt.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Tessera development CA"),
                         x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Tessera")])
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name).public_key(ca_key.public_key())
          .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(minutes=5))
          .not_valid_after(now + dt.timedelta(days=VALID_DAYS + 1))
          .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
          .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True, content_commitment=False,
                                       key_encipherment=False, data_encipherment=False, key_agreement=False, encipher_only=False,
                                       decipher_only=False), critical=True)
          .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
          .sign(ca_key, hashes.SHA256()))
    key = ec.generate_private_key(ec.SECP256R1())
    leaf = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Tessera development"),
                                     x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Tessera")]))
            .issuer_name(ca_name).public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + dt.timedelta(days=VALID_DAYS))
            .add_extension(_san(names), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
            .sign(ca_key, hashes.SHA256()))
    pem = serialization.Encoding.PEM
    _write_private(folder / "dev-key.pem", key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    _write(folder / "dev-ca.pem", ca.public_bytes(pem))
    _write(folder / "dev-cert.pem", leaf.public_bytes(pem) + ca.public_bytes(pem))


def dev_certs(folder: Path, extra_names: Iterable[str] = ()) -> DevCerts:
    """The development CA and leaf in ``folder``, made if missing, nearly expired, or lacking one of the names."""
    names = list(dict.fromkeys(["localhost", socket.gethostname(), "127.0.0.1", "::1", *[n for n in extra_names if n]]))
    out = DevCerts(folder / "dev-cert.pem", folder / "dev-key.pem", folder / "dev-ca.pem")
    if out.keyfile.is_file() and out.cafile.is_file() and _still_valid(out.certfile, names):
        return out
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (out.keyfile.is_file() and out.cafile.is_file() and _still_valid(out.certfile, names)):
            _make(folder, names)
    return out


def dev_certificate(folder: Path) -> tuple[Path, Path]:
    """(certificate, key) of the development leaf, for HTTPS/HTTP/3 servers."""
    certs = dev_certs(folder)
    return certs.certfile, certs.keyfile


def main(argv: list[str] | None = None) -> None:
    from shared.runtime.config import load_settings

    parser = argparse.ArgumentParser(prog="python -m shared.runtime.certs", description="Make the development CA and certificate.")
    parser.add_argument("folder", nargs="?", help="where to write them (default: <data_dir>/certs)")
    parser.add_argument("--name", action="append", default=[], help="another host name the certificate covers (repeatable)")
    args = parser.parse_args(argv)
    settings = load_settings()
    folder = Path(args.folder) if args.folder else settings.path("certs")
    certs = dev_certs(folder, [settings.core.advertise_host, *args.name])
    print(f"certs: {certs.certfile} (key {certs.keyfile}); clients trust {certs.cafile}")


if __name__ == "__main__":
    main()
