"""`portcullis audit` against Spectral's OWASP ruleset on a corpus of
OpenAPI documents: for every Spectral rule that judges the same thing as an
`audit` rule, each Spectral finding must have an `audit` finding of the
mapped checklist ID at the same place (the same JSON pointer, or one
containing the other). Writes the table to stdout (Markdown); exits 1 on
any miss.

Usage: compare_spectral.py SPECTRAL_JSON_DIR AUDIT_JSON_DIR DOC...
"""

import json
import os
import sys
from collections import defaultdict

# Spectral rule -> (checklist ID, audit rules that judge the same thing)
SAME = {
    "owasp:api2:2023-read-restricted": ("AUTHN-06", ["spec.operation-unsecured", "spec.public-read"]),
    "owasp:api2:2023-write-restricted": ("AUTHN-06", ["spec.operation-unsecured", "spec.public-write"]),
    "owasp:api2:2023-no-api-keys-in-url": ("AUTHN-04", ["spec.api-key-not-in-header"]),
    "owasp:api2:2023-no-http-basic": ("AUTHN-07", ["spec.http-auth-not-bearer"]),
    "owasp:api2:2023-no-credentials-in-url": ("DATA-01", ["spec.sensitive-in-url"]),
    "owasp:api4:2023-rate-limit-responses-429": ("INPUT-08", ["spec.no-429", "spec.429-without-body"]),
    "owasp:api4:2023-rate-limit-retry-after": ("INPUT-08", ["spec.429-without-retry-after"]),
    "owasp:api4:2023-string-limit": ("CONTRACT-01", ["spec.unbounded-string"]),
    "owasp:api4:2023-string-restricted": ("CONTRACT-01", ["spec.unbounded-string"]),
    "owasp:api4:2023-integer-limit": ("CONTRACT-01", ["spec.unbounded-number"]),
    "owasp:api4:2023-integer-limit-legacy": ("CONTRACT-01", ["spec.unbounded-number"]),
    "owasp:api4:2023-array-limit": ("CONTRACT-01", ["spec.unbounded-array"]),
    "owasp:api3:2023-no-additionalProperties": ("INPUT-06", ["spec.open-object"]),
    "owasp:api3:2023-constrained-additionalProperties": ("INPUT-06", ["spec.open-object"]),
    "owasp:api8:2023-no-server-http": ("TLS-05", ["spec.plaintext-server"]),
    "owasp:api8:2023-no-scheme-http": ("TLS-05", ["spec.plaintext-server"]),
}

# Judged differently on purpose (listed in the table, not compared).
DIFFERENT = {
    "owasp:api9:2023-inventory-environment": "Spectral wants the environment named in a server's `description` prose; `audit` wants the machine-readable `x-environment` (CONTRACT-03) and flags servers without it",
}


def escape(segment):
    return str(segment).replace("~", "~0").replace("/", "~1")


def related(a, b):
    return a == b or a.startswith(b + "/") or b.startswith(a + "/")


spectral_dir, audit_dir, docs = sys.argv[1], sys.argv[2], sys.argv[3:]
found = defaultdict(int)
matched = defaultdict(int)
misses = []
other = defaultdict(int)
for doc in docs:
    base = os.path.basename(doc)
    spectral = json.load(open(os.path.join(spectral_dir, base + ".json")))
    audit = json.load(open(os.path.join(audit_dir, base + ".json")))
    mine = [
        (c["id"], f["rule"], f["location"].get("pointer", ""))
        for c in audit["controls"]
        for f in c["findings"]
        if f["outcome"] != "pass" and f["location"]["kind"] == "spec"
    ]
    for s in spectral:
        code = s["code"]
        if code not in SAME:
            other[code] += 1
            continue
        pointer = "".join("/" + escape(p) for p in s["path"])
        ident, rules = SAME[code]
        found[code] += 1
        if any(i == ident and r in rules and related(p, pointer) for i, r, p in mine):
            matched[code] += 1
        else:
            misses.append(f"{base}: {code} at #{pointer} ({s['message']})")

print("| Spectral OWASP rule | checklist ID | `audit` rule | Spectral findings | `audit` finds too |")
print("|---|---|---|---:|---:|")
for code, (ident, rules) in SAME.items():
    print(f"| `{code}` | {ident} | {', '.join('`' + r + '`' for r in rules)} | {found[code]} | {matched[code]} |")
print()
print(f"{len(docs)} documents. Judged differently on purpose (not compared):")
for code, why in DIFFERENT.items():
    print(f"- `{code}` ({other.pop(code, 0)} findings): {why}")
print()
print("Spectral rules with no `audit` counterpart (not compared):")
for code, n in sorted(other.items()):
    print(f"- `{code}`: {n}")
if misses:
    print("\nMISSED:")
    for m in misses:
        print("- " + m)
sys.exit(1 if misses else 0)
