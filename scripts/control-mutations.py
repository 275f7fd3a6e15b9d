#!/usr/bin/env python3
"""Removes one control at a time and shows that the tests the catalogue
names for it fail (issue 17). Not part of CI: it rebuilds once per entry.

Each entry of scripts/control-mutations.toml names a checklist ID, a file,
a snippet that occurs exactly once in it, what replaces it (the control
switched off), and the cargo test arguments that run the catalogue's tests
for that ID. An entry passes when the build succeeds and the tests fail; a
build error or a green run is reported as such (a survivor).

    python3 scripts/control-mutations.py [--tree DIR] [--only ID,ID] [--markdown FILE] [--table FILE]

scripts/mutant-rechecks.toml holds, in the same form, the mutants that
`cargo mutants` reported missed and that a test added since now catches.

Run it in a scratch worktree (`git worktree add /tmp/mut HEAD`): the file
is restored after each entry, but an interrupted run leaves it mutated.
"""

import argparse
import pathlib
import subprocess
import sys
import time
import tomllib


def run(tree, entry):
    path = tree / entry["file"]
    original = path.read_text()
    if original.count(entry["find"]) != 1:
        return "snippet not found exactly once", 0.0
    path.write_text(original.replace(entry["find"], entry["replace"], 1))
    started = time.monotonic()
    try:
        out = subprocess.run(
            ["cargo", "test", "--locked", *entry["test"].split()],
            cwd=tree,
            capture_output=True,
            text=True,
            timeout=900,
        )
    except subprocess.TimeoutExpired:
        return "timed out", time.monotonic() - started
    finally:
        path.write_text(original)
    took = time.monotonic() - started
    text = out.stdout + out.stderr
    if "error[E" in text or "could not compile" in text:
        return "build error (not a valid mutation)", took
    ran = [l for l in text.splitlines() if l.startswith("test result:") and not l.startswith("test result: ok. 0 passed; 0 failed")]
    if not ran:
        return "no test matched (fix the entry)", took
    if out.returncode == 0:
        return "SURVIVED", took
    failed = [l.split()[1] for l in text.splitlines() if l.startswith("test ") and l.endswith("FAILED")]
    return "caught by " + ", ".join(failed or ["a failing test"]), took


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--tree", default=".")
    ap.add_argument("--only", default="")
    ap.add_argument("--markdown")
    ap.add_argument("--table", default="control-mutations.toml", help="under scripts/")
    args = ap.parse_args()
    tree = pathlib.Path(args.tree).resolve()
    entries = tomllib.loads((pathlib.Path(__file__).parent / args.table).read_text())["mutation"]
    only = {x for x in args.only.split(",") if x}
    rows = []
    bad = 0
    for e in entries:
        if only and e["id"] not in only:
            continue
        verdict, took = run(tree, e)
        bad += not verdict.startswith("caught")
        row = f"| {e['id']} | `{e['file']}`: {e['what']} | {verdict} |"
        print(row, f"({took:.0f} s)", flush=True)
        rows.append(row)
    if args.markdown:
        pathlib.Path(args.markdown).write_text(
            "| ID | control removed | result |\n|---|---|---|\n" + "\n".join(rows) + "\n"
        )
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()
