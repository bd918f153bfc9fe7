#!/usr/bin/python3
"""Checks every certificate, CSR and private key in the given files with a strict DER
parser that does not use OpenSSL (Debian's python3-cryptography, whose X.509 parsing is
its own Rust ASN.1 code, as strict as Go's crypto/x509 on what Keel encodes).

Files are PEM files or JSON documents whose string values hold PEM blocks (secrets
bundles, machine configs, client configs). Each certificate must parse with every
extension, carry a positive serial of at most 20 octets, and verify under one of the
CA certificates found in the same run (or be self-signed); each CSR must parse and carry
a valid signature; each private key must load.

Prints one line per problem and a summary; exits 1 when anything failed or nothing was
found, 2 on a usage error.
"""

import json
import re
import sys

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa, padding

PEM_RE = re.compile(r"-----BEGIN ([A-Z ]+)-----\r?\n.*?-----END \1-----", re.S)
KEY_LABELS = {"PRIVATE KEY", "EC PRIVATE KEY"}


def strings_of(value):
    """Every string inside a JSON value, depth first."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for v in value.values():
            yield from strings_of(v)
    elif isinstance(value, list):
        for v in value:
            yield from strings_of(v)


def pem_blocks(path):
    with open(path, "r", encoding="utf-8", errors="replace") as f:
        text = f.read()
    try:
        texts = list(strings_of(json.loads(text)))
    except ValueError:
        texts = [text]
    for t in texts:
        for m in PEM_RE.finditer(t):
            yield m.group(1), m.group(0).encode()


def verify_signed_by(cert, issuer_key):
    sig, tbs = cert.signature, cert.tbs_certificate_bytes
    if isinstance(issuer_key, ec.EllipticCurvePublicKey):
        issuer_key.verify(sig, tbs, ec.ECDSA(cert.signature_hash_algorithm))
    elif isinstance(issuer_key, ed25519.Ed25519PublicKey):
        issuer_key.verify(sig, tbs)
    elif isinstance(issuer_key, rsa.RSAPublicKey):
        issuer_key.verify(sig, tbs, padding.PKCS1v15(), cert.signature_hash_algorithm)
    else:
        raise InvalidSignature("unsupported issuer key type")


def is_ca(cert):
    try:
        return cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    except x509.ExtensionNotFound:
        return False


def main(argv):
    if len(argv) < 2 or argv[1] in ("-h", "--help"):
        print("usage: strict_der_check.py FILE...", file=sys.stderr)
        return 2
    problems = []
    certs = []  # (where, cert)
    counts = {"certificates": 0, "requests": 0, "keys": 0}
    for path in argv[1:]:
        for index, (label, pem) in enumerate(pem_blocks(path)):
            where = f"{path} block {index} ({label})"
            try:
                if label == "CERTIFICATE":
                    cert = x509.load_pem_x509_certificate(pem)
                    for ext in cert.extensions:  # parses every extension strictly
                        _ = ext.value
                    serial = cert.serial_number
                    if serial <= 0 or (serial.bit_length() + 8) // 8 > 20:
                        raise ValueError(f"serial {serial} is not positive or longer than 20 octets")
                    if cert.not_valid_before >= cert.not_valid_after:
                        raise ValueError("notBefore is not before notAfter")
                    certs.append((where, cert))
                    counts["certificates"] += 1
                elif label == "CERTIFICATE REQUEST":
                    csr = x509.load_pem_x509_csr(pem)
                    for ext in csr.extensions:
                        _ = ext.value
                    if not csr.is_signature_valid:
                        raise ValueError("the CSR's signature does not verify")
                    counts["requests"] += 1
                elif label in KEY_LABELS:
                    serialization.load_pem_private_key(pem, password=None)
                    counts["keys"] += 1
                elif label == "PUBLIC KEY":
                    serialization.load_pem_public_key(pem)
                    counts["keys"] += 1
                else:
                    raise ValueError(f"unexpected PEM block type {label}")
            except Exception as e:  # every parser error is a finding, whatever its class
                problems.append(f"{where}: {type(e).__name__}: {e}")

    cas = [c for _, c in certs if is_ca(c)]
    for where, cert in certs:
        candidates = [ca for ca in cas if ca.subject == cert.issuer]
        verified = False
        for ca in candidates:
            try:
                verify_signed_by(cert, ca.public_key())
                verified = True
                break
            except (InvalidSignature, TypeError, ValueError):
                continue  # a namesake CA with another key (or key type)
        if not verified:
            problems.append(f"{where}: no CA among the checked files verifies it (issuer "
                            f"{cert.issuer.rfc4514_string()})")

    for p in problems:
        print(p)
    total = sum(counts.values())
    print(f"strict DER: {counts['certificates']} certificates, {counts['requests']} CSRs, "
          f"{counts['keys']} keys checked, {len(problems)} problems")
    return 1 if problems or total == 0 else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
