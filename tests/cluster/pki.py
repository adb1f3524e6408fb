"""A throwaway private CA and certificates made with the openssl command line
(the README's walkthrough uses the same commands)."""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path


def _openssl(*args: str) -> None:
    subprocess.run(["openssl", *args], check=True, capture_output=True, timeout=60)


@dataclass(frozen=True)
class Pair:
    cert: Path
    key: Path


class CA:
    """A certificate authority in ``where``; :meth:`issue` signs certificates."""

    def __init__(self, where: Path, name: str = "uhaha test CA") -> None:
        where.mkdir(parents=True, exist_ok=True)
        self.dir = where
        self.cert, self.key = where / "ca.pem", where / "ca-key.pem"
        _openssl(
            "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
            "-nodes", "-days", "2", "-keyout", str(self.key), "-out", str(self.cert),
            "-subj", f"/CN={name}",
            "-addext", "basicConstraints=critical,CA:TRUE",
            "-addext", "keyUsage=critical,keyCertSign,cRLSign",
        )  # fmt: skip

    def issue(self, name: str, san: str = "IP:127.0.0.1,DNS:localhost") -> Pair:
        """A key and a certificate for ``name`` (server and client use)."""
        key, csr, cert = (self.dir / f"{name}{ext}" for ext in ("-key.pem", ".csr", ".pem"))
        ext = self.dir / f"{name}.ext"
        ext.write_text(
            f"subjectAltName={san}\n"
            "basicConstraints=CA:FALSE\n"
            "keyUsage=digitalSignature,keyEncipherment\n"
            "extendedKeyUsage=serverAuth,clientAuth\n"
        )
        _openssl(
            "req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
            "-nodes", "-keyout", str(key), "-out", str(csr), "-subj", f"/CN={name}",
        )  # fmt: skip
        _openssl(
            "x509", "-req", "-in", str(csr), "-CA", str(self.cert), "-CAkey", str(self.key),
            "-CAcreateserial", "-days", "2", "-out", str(cert), "-extfile", str(ext),
        )  # fmt: skip
        return Pair(cert, key)
