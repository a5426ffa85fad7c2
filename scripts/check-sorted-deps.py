#!/usr/bin/env python3
"""`make lint`: every dependency table of every Cargo.toml lists its crates
in alphabetical order within each blank-line-separated group (what
`cargo sort` enforces), so merges never fight over where a line goes."""
import pathlib
import re
import sys

TABLE = re.compile(r"^\[(workspace\.)?((dev-|build-)?dependencies)\]$")
bad = []
for path in sorted(pathlib.Path(".").glob("**/Cargo.toml")):
    if "target" in path.parts:
        continue
    group, in_table = [], False
    lines = path.read_text().splitlines() + [""]
    for no, line in enumerate(lines, 1):
        s = line.strip()
        if s.startswith("["):
            in_table = bool(TABLE.match(s))
            group = []
            continue
        if not in_table or s.startswith("#"):
            continue
        if not s:
            group = []
            continue
        name = s.split("=")[0].split(".")[0].strip()
        if group and name < group[-1]:
            bad.append(f"{path}:{no}: {name} is listed after {group[-1]}")
        group.append(name)
if bad:
    print("dependencies out of order (sort them alphabetically):", *bad, sep="\n  ")
    sys.exit(1)
