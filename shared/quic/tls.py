"""QUIC configurations from settings: TLS 1.3 (QUIC has no other), ALPN tessera/1, windows, datagram size, idle timeout."""

from __future__ import annotations

import ipaddress
from pathlib import Path

from aioquic.quic.configuration import QuicConfiguration

from shared.errors import ConfigError
from shared.runtime.certs import DevCerts, dev_certs
from shared.runtime.config import Settings

ALPN = "tessera/1"
#: Loopback's MTU is 64 KiB; a 60 kB datagram carries several STREAM frames (each capped below 16 kB, see protocol.py).
LOOPBACK_DATAGRAM = 60000
NETWORK_DATAGRAM = 1350


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def datagram_size(settings: Settings, host: str) -> int:
    """aioquic's per-datagram Python work is its limit: on loopback, 60 kB datagrams make 45 times fewer than 1350 bytes."""
    if settings.quic.max_datagram_size:
        return settings.quic.max_datagram_size
    return LOOPBACK_DATAGRAM if is_loopback(host) else NETWORK_DATAGRAM


def certificates(settings: Settings) -> DevCerts:
    """The configured certificate, key and CA, or the development ones (made on first use)."""
    if settings.quic.certfile or settings.quic.cafile:
        certfile = Path(settings.quic.certfile).expanduser() if settings.quic.certfile else None
        keyfile = Path(settings.quic.keyfile).expanduser() if settings.quic.keyfile else None
        cafile = Path(settings.quic.cafile).expanduser() if settings.quic.cafile else None
        for name, path in (("quic_certfile", certfile), ("quic_keyfile", keyfile), ("quic_cafile", cafile)):
            if path is not None and not path.is_file():
                raise ConfigError(f"TESSERA_{name.upper()}", f"{path} is not a file")
        if certfile is not None and keyfile is None:
            raise ConfigError("TESSERA_QUIC_KEYFILE", "a key is needed with TESSERA_QUIC_CERTFILE")
        dev = dev_certs(settings.path("certs"), [settings.public_host()])
        return DevCerts(certfile or dev.certfile, keyfile or dev.keyfile, cafile or dev.cafile)
    return dev_certs(settings.path("certs"), [settings.public_host()])


def _base(settings: Settings, is_client: bool, host: str) -> QuicConfiguration:
    return QuicConfiguration(is_client=is_client, alpn_protocols=[ALPN], idle_timeout=settings.quic.idle_timeout_s,
                             max_stream_data=settings.quic.stream_window, max_data=settings.quic.connection_window,
                             max_datagram_size=datagram_size(settings, host), congestion_control_algorithm="cubic")


def server_configuration(settings: Settings, bind_host: str) -> QuicConfiguration:
    certs = certificates(settings)
    config = _base(settings, False, bind_host)
    config.load_cert_chain(certs.certfile, certs.keyfile)
    return config


def client_configuration(settings: Settings, host: str, cafile: Path) -> QuicConfiguration:
    """Verifies the server against the configured CA (never switched off) under the ticket's host name."""
    config = _base(settings, True, host)
    config.load_verify_locations(cafile=str(cafile))
    config.server_name = host.strip("[]")
    return config
