"""Compares `portcullis audit`'s TLS verdicts with testssl.sh's on one server.

Usage: compare_tls_verdicts.py NAME TESTSSL_JSON AUDIT_JSON
Protocols (TLS 1.0, 1.1, 1.2, 1.3), weak suite families (export,
NULL/anonymous, RC4, 3DES, CBC), forward secrecy, a short RSA key and a
certificate for another name must agree; prints the table, exits 1 on any
disagreement.
"""

import json
import sys

name, testssl_path, audit_path = sys.argv[1:4]
testssl = {f["id"]: f["finding"] for f in json.load(open(testssl_path))}
audit = json.load(open(audit_path))
messages = [
    (f["rule"], f["message"])
    for c in audit["controls"]
    for f in c["findings"]
    if f["rule"].startswith("tls.")
]


def said(rule, text=""):
    return any(r == rule and text in m for r, m in messages)


def offered(testssl_id):
    finding = testssl.get(testssl_id, "")
    return finding.startswith("offered") and "not offered" not in finding


# Forward secrecy as audit saw it: TLS 1.3, or TLS 1.2 choosing an
# ephemeral (EC)DHE suite when offered everything.
ECDHE = {0xC02B, 0xC02C, 0xC02F, 0xC030, 0xCCA8, 0xCCA9, 0xC009, 0xC00A, 0xC013, 0xC014,
         0xC023, 0xC024, 0xC027, 0xC028, 0x0033, 0x0039, 0x0067, 0x006B}
tls13 = said("tls.tls13-only") or said("tls.tls12-accepted")
chosen = [int(m.split("chose 0x")[1].rstrip(")"), 16) for r, m in messages
          if r in ("tls.tls12-accepted", "tls.no-tls13") and "chose 0x" in m]
audit_fs = tls13 or any(c in ECDHE for c in chosen)

def rsa_bits():
    """The RSA key size testssl.sh read (`RSA 2048 bits`), or 4096 for other keys."""
    words = testssl.get("cert_keySize", "").split()
    return int(words[1]) if len(words) > 1 and words[0] == "RSA" else 4096


rows = [
    ("TLS 1.0", offered("TLS1"), said("tls.old-protocol", "TLS 1.0")),
    ("TLS 1.1", offered("TLS1_1"), said("tls.old-protocol", "TLS 1.1")),
    ("TLS 1.2", offered("TLS1_2"), said("tls.tls12-accepted") or said("tls.no-tls13")),
    ("TLS 1.3", offered("TLS1_3"), said("tls.tls13-only") or said("tls.tls12-accepted")),
    ("export suites", offered("cipherlist_EXPORT"), said("tls.weak-suite", "export")),
    ("NULL/anonymous suites", offered("cipherlist_NULL") or offered("cipherlist_aNULL"), said("tls.weak-suite", "NULL")),
    ("RC4 suites", "not vulnerable" not in testssl.get("RC4", "not vulnerable"), said("tls.weak-suite", "RC4")),
    ("3DES suites", offered("cipherlist_3DES_IDEA"), said("tls.weak-suite", "3DES")),
    ("CBC suites", offered("cipherlist_AVERAGE"), said("tls.weak-suite", "CBC")),
    ("forward secrecy offered", offered("PFS"), audit_fs),
    ("key under 2048 bits (RSA)", rsa_bits() < 2048, said("tls.weak-key", "RSA")),
    ("name mismatch", "does not match" in testssl.get("cert_trust", ""), said("tls.name-mismatch")),
]
bad = 0
print(f"  {name}: {'':24} testssl.sh  audit")
for what, t, a in rows:
    mark = "" if t == a else "   DISAGREE"
    bad += t != a
    print(f"  {name}: {what:24} {str(t):10}  {str(a):5}{mark}")
sys.exit(1 if bad else 0)
