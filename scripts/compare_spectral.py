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
    "owasp:api1:2023-no-numeric-ids": ("AUTHZ-03", ["spec.numeric-id"]),
    "owasp:api2:2023-jwt-best-practices": ("AUTHN-08", ["spec.jwt-bcp-unstated"]),
    "owasp:api2:2023-short-lived-access-tokens": ("AUTHN-07", ["spec.no-refresh-url"]),
    "owasp:api4:2023-integer-format": ("CONTRACT-01", ["spec.integer-without-format"]),
    "owasp:api4:2023-rate-limit": ("INPUT-08", ["spec.no-rate-limit-headers"]),
    "owasp:api8:2023-define-cors-origin": ("OUTPUT-11", ["spec.cors-origin-undeclared"]),
    "owasp:api8:2023-define-error-responses-401": ("AUTHN-14", ["spec.no-401-response"]),
    "owasp:api8:2023-define-error-responses-500": ("OUTPUT-14", ["spec.no-500-response"]),
    "owasp:api8:2023-define-error-validation": ("INPUT-04", ["spec.no-validation-error-response"]),
    "owasp:api9:2023-inventory-access": ("CONTRACT-03", ["spec.server-audience-unmarked"]),
}

# Findings of a compared rule that `audit` leaves out on purpose: the
# rule's code -> (does this Spectral pointer fall under it, why).
DEFAULT_WHY = "a `default` answer with a body declares the error answers the operation lists no code for; `audit` says so at that place (`spec.default-error-response`) instead of asking for each code"
EXCUSED = {
    "owasp:api8:2023-define-error-responses-401": (
        lambda pointer, by_default: any(related(p, pointer) for p in by_default),
        DEFAULT_WHY,
    ),
    "owasp:api8:2023-define-error-responses-500": (
        lambda pointer, by_default: any(related(p, pointer) for p in by_default),
        DEFAULT_WHY,
    ),
    "owasp:api8:2023-define-error-validation": (
        lambda pointer, by_default: any(related(p, pointer) for p in by_default),
        DEFAULT_WHY,
    ),
    "owasp:api2:2023-short-lived-access-tokens": (
        lambda pointer, _: pointer.endswith("/flows/clientCredentials"),
        "the client-credentials flow renews a token by asking again; RFC 6749 §4.4.3 says it should get no refresh token, so a missing `refreshUrl` there is no finding",
    ),
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
excused = defaultdict(int)
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
    # Where `audit` says a `default` answer declares the error bodies.
    by_default = [
        f["location"].get("pointer", "")
        for c in audit["controls"]
        for f in c["findings"]
        if f["rule"] == "spec.default-error-response"
    ]
    for s in spectral:
        code = s["code"]
        if code not in SAME:
            other[code] += 1
            continue
        pointer = "".join("/" + escape(p) for p in s["path"])
        ident, rules = SAME[code]
        if code in EXCUSED and EXCUSED[code][0](pointer, by_default):
            excused[code] += 1
            continue
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
print("Findings of compared rules left out on purpose:")
for code, (_, why) in EXCUSED.items():
    print(f"- `{code}` ({excused[code]} findings): {why}")
print()
if other:
    print("Spectral rules with no `audit` counterpart (not compared):")
    for code, n in sorted(other.items()):
        print(f"- `{code}`: {n}")
else:
    print("Every Spectral OWASP rule that fired on the corpus is compared or judged differently on purpose.")
if misses:
    print("\nMISSED:")
    for m in misses:
        print("- " + m)
sys.exit(1 if misses else 0)
