#!/usr/bin/env python3
"""Checks docker-compose.yml against what a stack fit to run on one server
needs, without Docker (only its client is installed where `make test` runs):

- no credential is written in the file: every password, secret key and URL
  credential comes from a required variable (`${VAR:?…}`), so compose refuses
  to start while .env lacks it;
- every variable the file reads is documented in .env.example, and .env is
  kept out of git and out of the image's build context;
- only the api publishes a port, on 127.0.0.1 unless STRATA_PUBLISH says
  otherwise;
- every long-running service restarts after a crash or a reboot;
- with `--key-script SERVER_URL`: the strata-key service's script, run
  twice with the real strata-api (from PATH) in a new database on that
  server, creates one key and prints the same key both times.

    scripts/check-compose.py [--key-script postgres://server]   # a database of its own is made there
"""

import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import yaml

ROOT = Path(__file__).resolve().parent.parent
ONE_SHOT = {"minio-init", "strata-key"}
SECRET_NAME = re.compile(r"PASSWORD|SECRET|TOKEN")
REQUIRED = re.compile(r"^\$\{[A-Z0-9_]+:\?[^}]+\}$")


def fail(problems):
    for p in problems:
        print(f"strata: docker-compose.yml: {p}", file=sys.stderr)
    sys.exit(1)


def environment(service: dict) -> dict:
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env)
    return {k: str(v) for k, v in env.items()}


def static_checks(text: str, compose: dict) -> list:
    problems = []
    services = compose["services"]
    anchors = compose.get("x-strata-env", {})
    for name, service in list(services.items()) + [("x-strata-env", {"environment": anchors})]:
        for key, value in environment(service).items():
            if SECRET_NAME.search(key) and not REQUIRED.match(value):
                problems.append(f"{name}: {key} must come from a required variable (${{VAR:?…}}), not {value!r}")
            for cred in re.findall(r"://[^:/@\s]+:([^@\s]+)@", value):
                if not REQUIRED.match(cred):
                    problems.append(f"{name}: {key} holds a credential that is not a required variable: {cred!r}")
        command = service.get("command") or []
        if isinstance(command, list):
            for flag, value in zip(command, command[1:]):
                if flag in ("--pass", "--password", "--auth") and not REQUIRED.match(str(value)):
                    problems.append(f"{name}: a password on the command line that is not a required variable: {value!r}")
        if name == "x-strata-env":
            continue
        ports = service.get("ports") or []
        if ports and name != "strata-api":
            problems.append(f"{name}: publishes {ports}; only strata-api may (put other consoles in an override file)")
        if name == "strata-api":
            if ports != ["${STRATA_PUBLISH:-127.0.0.1:8080}:8080"]:
                problems.append(f"strata-api: publish on ${{STRATA_PUBLISH:-127.0.0.1:8080}}, not {ports}")
        if name not in ONE_SHOT and service.get("restart") not in ("unless-stopped", "always"):
            problems.append(f"{name}: no restart policy (restart: unless-stopped), so it stays down after a reboot")
    example = (ROOT / ".env.example").read_text()
    documented = set(re.findall(r"^([A-Z0-9_]+)=", example, re.M))
    used = set(re.findall(r"\$\{([A-Z0-9_]+)", text))
    for var in sorted(used - documented):
        problems.append(f"reads ${{{var}}}, which .env.example does not document")
    for ignore in (".gitignore", ".dockerignore"):
        if ".env" not in (ROOT / ignore).read_text().split():
            problems.append(f".env is not in {ignore}")
    return problems


def key_script(compose: dict, server_url: str) -> list:
    """Runs strata-key's script twice in a database of its own on `server_url`'s server."""
    db = f"strata_compose_keys_{os.getpid()}"
    subprocess.run(["psql", server_url, "-qc", f"CREATE DATABASE {db}"], check=True, capture_output=True)
    try:
        return run_key_script(compose, urlunsplit(urlsplit(server_url)._replace(path=f"/{db}")))
    finally:
        subprocess.run(["psql", server_url, "-qc", f"DROP DATABASE IF EXISTS {db} WITH (FORCE)"], capture_output=True)


def run_key_script(compose: dict, database_url: str) -> list:
    script = compose["services"]["strata-key"]["command"][0].replace("$$", "$")
    with tempfile.TemporaryDirectory(prefix="strata-keys-") as keys:
        script = script.replace("/var/lib/strata/keys", keys)
        env = dict(os.environ, STRATA_DATABASE_URL=database_url)
        outputs = []
        for _ in range(2):
            done = subprocess.run(["sh", "-c", script], env=env, capture_output=True, text=True)
            if done.returncode != 0:
                return [f"strata-key's script failed: {done.stderr.strip()}"]
            outputs.append(done.stdout.strip())
        listed = subprocess.run(["strata-api", "keys", "list"], env=env, capture_output=True, text=True, check=True)
        demo_keys = [line for line in listed.stdout.splitlines()[1:] if line.split("\t")[1:2] == ["demo"]]
    problems = []
    if not re.fullmatch(r"strata_\S+", outputs[0]):
        problems.append(f"strata-key printed {outputs[0]!r}, not just a key")
    if outputs[0] != outputs[1]:
        problems.append("strata-key printed another key on its second run")
    if len(demo_keys) != 1:
        problems.append(f"two runs of strata-key left {len(demo_keys)} keys of project demo, not 1")
    return problems


def main() -> int:
    text = (ROOT / "docker-compose.yml").read_text()
    compose = yaml.safe_load(text)
    problems = static_checks(text, compose)
    if "--key-script" in sys.argv:
        problems += key_script(compose, sys.argv[sys.argv.index("--key-script") + 1])
    if problems:
        fail(problems)
    return 0


if __name__ == "__main__":
    sys.exit(main())
