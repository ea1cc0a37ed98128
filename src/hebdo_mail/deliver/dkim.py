"""DKIM signatures (RFC 6376, and RFC 8463 for Ed25519), added to each message on the fast path.

Canonicalization is relaxed for headers and simple for the body, the combination dkimpy also
uses by default and the most robust in transit. The private-key operation uses the
``cryptography`` package (OpenSSL): dkimpy's own signer does RSA in pure Python, measured at about
8 ms a message here, which would cap a send near 125 messages a second. dkimpy verifies every
signature in the tests, so interoperability is checked against it.
"""

from __future__ import annotations

import base64
import hashlib
import logging
import os
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, padding, rsa

from ..errors import ConfigError
from ..workspace import Workspace, check_private
from .wireformat import CRLF, from_wire

if TYPE_CHECKING:
    from ..config import DkimSettings

log = logging.getLogger(__name__)

# What RFC 8058 and good practice ask to be covered, in this order; absent ones are skipped.
SIGNED_HEADERS = (
    "From", "To", "Subject", "Date", "Message-ID", "MIME-Version", "Content-Type",
    "List-Id", "List-Unsubscribe", "List-Unsubscribe-Post", "Reply-To",
)  # fmt: skip
_WSP = re.compile(rb"[ \t]+")


def relaxed_header(name: bytes, value: bytes) -> bytes:
    """RFC 6376 3.4.2: lowercase name, unfolded value, runs of white space as one space."""
    unfolded = value.replace(b"\r\n", b"")
    return name.strip().lower() + b":" + _WSP.sub(b" ", unfolded).strip() + CRLF


def simple_body(body: bytes) -> bytes:
    """RFC 6376 3.4.3: the body as is, with trailing empty lines reduced to one CRLF."""
    stripped = body.rstrip(b"\r\n")
    return stripped + CRLF if stripped else CRLF


def split_headers(head: bytes) -> list[tuple[bytes, bytes]]:
    """(name, raw value with its folding) for each header of the head (which ends with CRLF)."""
    fields: list[tuple[bytes, bytes]] = []
    for line in head.split(CRLF)[:-1]:
        if line[:1] in (b" ", b"\t") and fields:
            name, value = fields[-1]
            fields[-1] = (name, value + CRLF + line)
        else:
            name, _, value = line.partition(b":")
            fields.append((name, value))
    return fields


@dataclass
class DkimSigner:
    settings: DkimSettings
    key: rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey

    def sign(self, message: bytes, now: float | None = None) -> bytes:
        """The DKIM-Signature header line(s) for ``message`` (headers, CRLF CRLF, body)."""
        head, _, body = message.partition(CRLF + CRLF)
        fields = split_headers(head + CRLF)
        present = {name.strip().lower() for name, _ in fields}
        names = [n for n in SIGNED_HEADERS if n.lower().encode() in present]
        body_hash = base64.b64encode(hashlib.sha256(simple_body(body)).digest()).decode()
        tags = [
            "v=1", f"a={self.settings.algorithm}", "c=relaxed/simple",
            f"d={self.settings.domain}", f"s={self.settings.selector}",
            f"t={int(now if now is not None else time.time())}",
            "h=" + ":".join(n.lower() for n in names), f"bh={body_hash}", "b=",
        ]  # fmt: skip
        unsigned = "DKIM-Signature: " + ";\r\n\t".join(tags)
        by_name: dict[bytes, list[bytes]] = {}
        for name, value in fields:
            by_name.setdefault(name.strip().lower(), []).append(value)
        data = b"".join(
            relaxed_header(n.lower().encode(), by_name[n.lower().encode()][-1]) for n in names
        )
        data += relaxed_header(b"DKIM-Signature", unsigned.encode().partition(b":")[2])[:-2]
        signature = base64.b64encode(self._signature(data)).decode()
        # Folded every 72 characters: some receivers reject a b= line too long.
        folded = "\r\n\t".join(signature[i : i + 72] for i in range(0, len(signature), 72))
        return (unsigned + folded + "\r\n").encode()

    @property
    def slow(self) -> bool:
        """RSA's private-key operation (about 1 ms) is worth a worker thread; Ed25519's
        (0.05 ms) costs less than the hop to one."""
        return isinstance(self.key, rsa.RSAPrivateKey)

    def sign_wire(self, wire: bytes) -> bytes:
        """A message in SMTP DATA form with its signature added; the signature covers the
        message as delivered, without SMTP's dot-stuffing."""
        return self.sign(from_wire(wire)) + wire

    def _signature(self, data: bytes) -> bytes:
        if isinstance(self.key, rsa.RSAPrivateKey):
            return self.key.sign(data, padding.PKCS1v15(), hashes.SHA256())
        # RFC 8463: Ed25519 signs the SHA-256 hash of the header data.
        return self.key.sign(hashlib.sha256(data).digest())


def alignment_warning(dkim_domain: str, sender_domain: str) -> str | None:
    """DMARC passes on DKIM only when d= is the From domain or a parent of it."""
    d, sender = dkim_domain.lower().rstrip("."), sender_domain.lower()
    if sender == d or sender.endswith("." + d):
        return None
    return (
        f"[dkim] domain {dkim_domain} is not the From domain {sender_domain} nor a parent of it: "
        "receivers checking DMARC will not count the signature"
    )


def load_signer(workspace: Workspace) -> DkimSigner | None:
    settings = workspace.settings.dkim
    if settings is None:
        return None
    warning = alignment_warning(settings.domain, workspace.settings.newsletter.sender_domain)
    if warning:
        log.warning("%s", warning)
    path = workspace.root / settings.key_file
    try:
        check_private(path)
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    except OSError as exc:
        raise ConfigError(
            f"the DKIM key cannot be read ({exc.strerror}); run `hebdo-mail dkim keygen`", path=path
        ) from None
    except (ValueError, TypeError, UnsupportedAlgorithm):
        raise ConfigError(
            "is not a PEM private key without a passphrase; run `hebdo-mail dkim keygen`", path=path
        ) from None
    wanted = rsa.RSAPrivateKey if settings.algorithm == "rsa-sha256" else ed25519.Ed25519PrivateKey
    if not isinstance(key, wanted):
        raise ConfigError(
            f"does not hold a key for {settings.algorithm}; fix [dkim] algorithm or the key",
            path=path,
        )
    return DkimSigner(settings, key)


def dns_record(key: rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey) -> str:
    """The TXT record that publishes the public half of ``key``."""
    public = key.public_key()
    if isinstance(public, rsa.RSAPublicKey):
        der = public.public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        return f"v=DKIM1; k=rsa; p={base64.b64encode(der).decode()}"
    raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return f"v=DKIM1; k=ed25519; p={base64.b64encode(raw).decode()}"


def txt_strings(record: str) -> str:
    """The record as a zone file writes it: quoted strings of at most 255 characters each."""
    return " ".join(f'"{record[i : i + 255]}"' for i in range(0, len(record), 255))


def generate_key(path: Path, algorithm: str) -> rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey:
    """A new key pair written (0600, never over an existing file) as PEM."""
    key: rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey
    if algorithm == "rsa-sha256":
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    else:
        key = ed25519.Ed25519PrivateKey.generate()
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise ConfigError("already exists; move it aside to make a new key", path=path) from None
    with os.fdopen(fd, "wb") as handle:
        handle.write(pem)
    return key
