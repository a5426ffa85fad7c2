#!/usr/bin/env python3
"""Checks deploy/Dockerfile's build stages without Docker.

Docker is only a client where `make test` runs, so this replays what the
planner and build stages do before the source is copied, with the same
cargo-chef version:

1. every cargo command in the Dockerfile is `--locked` and nothing hides a
   failure (`|| true`, `; true`);
2. `cargo chef prepare` over the build context (the files git tracks, minus
   .dockerignore), then `cargo chef cook --no-build` in an empty folder,
   which lays out the dependency-only skeleton the dependency layer builds;
3. that skeleton resolves with the committed Cargo.lock (`cargo metadata
   --locked`) and holds every workspace member;
4. the binaries the final stage copies are binaries of the workspace.

    scripts/check-dockerfile.py        # needs cargo-chef (scripts/ensure-tools.sh installs it)
"""

import fnmatch
import json
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DOCKERFILE = ROOT / "deploy/Dockerfile"


def fail(message: str) -> None:
    print(f"strata: deploy/Dockerfile: {message}", file=sys.stderr)
    sys.exit(1)


def run(args, cwd, what):
    done = subprocess.run(args, cwd=cwd, capture_output=True, text=True)
    if done.returncode != 0:
        fail(f"{what} failed ({' '.join(args)}):\n{done.stderr.strip()}")
    return done.stdout


def instructions(text: str):
    """RUN/COPY/... instructions with their continuation lines joined."""
    text = re.sub(r"\\\n", " ", text)
    return [line.strip() for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]


def members(manifest_dir: Path) -> dict:
    meta = json.loads(
        run(["cargo", "metadata", "--locked", "--no-deps", "--format-version", "1"], manifest_dir, "cargo metadata")
    )
    return {p["name"]: p for p in meta["packages"]}


def context_files():
    """What `COPY . .` sees in a clean clone: tracked files (and new ones not ignored), minus .dockerignore."""
    listed = subprocess.run(
        ["git", "ls-files", "-co", "--exclude-standard"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.split("\n")
    ignore = [p.strip() for p in (ROOT / ".dockerignore").read_text().splitlines() if p.strip() and not p.startswith("#")]
    for path in filter(None, listed):
        if any(fnmatch.fnmatch(path, pat) or path.startswith(pat.rstrip("/") + "/") for pat in ignore):
            continue
        if (ROOT / path).is_file():
            yield path


def main() -> int:
    steps = instructions(DOCKERFILE.read_text())
    for step in steps:
        if re.search(r"\|\|\s*true\b|;\s*true\b", step):
            fail(f"a step hides its failure: {step}")
        for cargo in re.findall(r"cargo (?:build|install|chef cook)[^&;]*", step):
            if "--locked" not in cargo:
                fail(f"not --locked: {cargo}")
    pinned = next((m.group(1) for s in steps for m in [re.search(r"cargo-chef@([0-9.]+)", s)] if m), None)
    if not pinned:
        fail("cargo-chef is not installed at a pinned version (cargo install --locked cargo-chef@X.Y.Z)")
    have = subprocess.run(["cargo", "chef", "--version"], capture_output=True, text=True)
    if have.returncode != 0 or pinned not in have.stdout:
        fail(f"the check needs cargo-chef {pinned} (scripts/ensure-tools.sh installs it); found: {have.stdout.strip() or have.stderr.strip()}")
    cook = next((s for s in steps if "cargo chef cook" in s), None)
    if not cook:
        fail("no `cargo chef cook` step: the dependency layer would rebuild on every source change")

    with tempfile.TemporaryDirectory(prefix="strata-docker-") as tmp:
        planner, build = Path(tmp, "planner"), Path(tmp, "build")
        for path in context_files():
            dest = planner / path
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / path, dest)
        run(["cargo", "chef", "prepare", "--recipe-path", "recipe.json"], planner, "the planner stage")
        build.mkdir()
        shutil.copy2(planner / "recipe.json", build / "recipe.json")
        args = cook.split("RUN ", 1)[-1].split()
        run(args + ["--no-build"], build, "the dependency layer's skeleton")
        skeleton, workspace = members(build), members(ROOT)
        missing = sorted(set(workspace) - set(skeleton))
        if missing:
            fail(f"the dependency layer lacks workspace members: {', '.join(missing)}")
        bins = {t["name"] for p in workspace.values() for t in p["targets"] if "bin" in t["kind"]}
        for step in steps:
            for name in re.findall(r"target/release/([\w-]+)", step):
                if name not in bins:
                    fail(f"copies target/release/{name}, which no workspace member builds")
    print(f"strata: deploy/Dockerfile: the dependency layer holds all {len(workspace)} workspace members and resolves with Cargo.lock (cargo-chef {pinned})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
