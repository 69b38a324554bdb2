"""A test CA and a broker certificate made with the ``openssl`` command line (PEM files).

What a TLS listener of a test broker needs: Apache Kafka reads them as PEM stores
(``ssl.keystore.type=PEM``), librdkafka and Python's ``ssl`` read the CA file
(``SCV_SSL_CAFILE``). Keys are RSA 2048 and certificates live a day: nothing outlives the
test.

The broker gets its key and certificate chain inline (``ssl.keystore.key``,
``ssl.keystore.certificate.chain``): Kafka reads a PEM key store *file* only with an
encrypted key, and the JVM cannot decrypt OpenSSL 3's default (PBES2) encryption.
"""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class BrokerCerts:
    ca: Path  #: the CA certificate: the clients' trust store, and the broker's
    cert: Path  #: the broker's certificate
    key: Path  #: its private key (PKCS#8, not encrypted)

    def kafka_config(self) -> dict[str, str]:
        """A Kafka listener's PEM key and trust stores (``server.properties`` values)."""
        chain = self.cert.read_text() + self.ca.read_text()
        return {
            "ssl.keystore.type": "PEM",
            "ssl.keystore.certificate.chain": _inline(chain),
            "ssl.keystore.key": _inline(self.key.read_text()),
            "ssl.truststore.type": "PEM",
            "ssl.truststore.location": str(self.ca),
        }


def _inline(pem: str) -> str:
    """A PEM text as one properties line (Java's ``Properties`` reads ``\\n`` as a newline)."""
    return pem.strip().replace("\n", "\\n")


def _openssl(*args: str | Path, cwd: Path) -> None:
    done = subprocess.run(
        ["openssl", *map(str, args)],
        cwd=cwd,
        capture_output=True,
        text=True,
        check=False,
        stdin=subprocess.DEVNULL,
    )
    if done.returncode != 0:
        raise RuntimeError(f"openssl {args[0]} failed: {done.stderr.strip()[-400:]}")


def make_broker_certs(
    folder: Path, names: tuple[str, ...] = ("IP:127.0.0.1", "DNS:localhost")
) -> BrokerCerts:
    """A CA and a broker certificate for ``names`` (subjectAltName entries), in ``folder``."""
    if shutil.which("openssl") is None:
        raise RuntimeError("the openssl command line is needed to make test certificates")
    folder.mkdir(parents=True, exist_ok=True)
    _openssl(
        "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
        "-subj", "/CN=scv test CA", "-keyout", "ca.key", "-out", "ca.pem",
        "-addext", "basicConstraints=critical,CA:TRUE",
        "-addext", "keyUsage=critical,keyCertSign,cRLSign",
        cwd=folder,
    )  # fmt: skip
    _openssl(
        "req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=127.0.0.1",
        "-keyout", "broker.key", "-out", "broker.csr",
        cwd=folder,
    )  # fmt: skip
    (folder / "broker.ext").write_text(
        f"subjectAltName={','.join(names)}\n"
        "basicConstraints=CA:FALSE\n"
        "keyUsage=critical,digitalSignature,keyEncipherment\n"
        "extendedKeyUsage=serverAuth,clientAuth\n"
    )
    _openssl(
        "x509", "-req", "-in", "broker.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
        "-CAcreateserial", "-days", "1", "-extfile", "broker.ext", "-out", "broker.pem",
        cwd=folder,
    )  # fmt: skip
    return BrokerCerts(ca=folder / "ca.pem", cert=folder / "broker.pem", key=folder / "broker.key")
