#!/usr/bin/env python3
"""Benchmark of POST /api/auth/token: login with the password hash the service writes (Argon2id) against
the hash it wrote before (Django's PBKDF2-SHA256, 1,000,000 iterations).

    .venv/bin/python bench/login.py              # about 1 minute
    .venv/bin/python bench/login.py --logins 10  # quicker, noisier

In one process, against a dedicated PostgreSQL database (deal_canvas_bench, created and migrated when
missing) and Redis database number 15; nothing shared is flushed or dropped:

1. creates one user and computes its password hash once with each hasher;
2. alternates three kinds of login through the whole view (Django's test client, DRF, the login rate
   limiter, simplejwt, the refresh-token record), writing the kind's hash back before each:
   - before: a PBKDF2 hash under the former PASSWORD_HASHERS (PBKDF2 first), as the service logged in
     until Argon2id;
   - after: an Argon2id hash under the project's settings;
   - upgrade: a PBKDF2 hash under the project's settings, the one login of an existing user that checks
     PBKDF2 and rewrites the hash as Argon2id (the migration path);
3. prints p50 / p95 of each and the ratio before/after (p50), plus one wrong-password login of each (a
   refused login costs what an accepted one does).

The login rate limits are raised for this process only (the bench logs in the same user many times).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bench.common import ensure_database, machine_note  # noqa: E402 - after the path setup

DEFAULT_DATABASE_URL = "postgresql://postgres@127.0.0.1:5432/deal_canvas_bench"
PASSWORD = "bench-login-pass-1234"
USERNAME = "bench-login"


def environment(database_url: str, redis_url: str) -> dict[str, str]:
    return {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "bench.settings",
        "DATABASE_URL": database_url,
        "REDIS_URL": redis_url,
        "LANGGRAPH_DATABASE_URL": "",
        # one user logs in many times from one address: lift the limiter's budgets (it still runs)
        "LOGIN_USERNAME_RATE_PER_MINUTE": "1000000",
        "LOGIN_USERNAME_BURST": "1000000",
        "LOGIN_ADDRESS_RATE_PER_MINUTE": "1000000",
        "LOGIN_ADDRESS_BURST": "1000000",
    }


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--logins", type=int, default=30, help="timed logins per hasher (default 30)")
    parser.add_argument("--database-url", default=os.environ.get("BENCH_DATABASE_URL", DEFAULT_DATABASE_URL))
    parser.add_argument("--redis-url", default=os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/15"))
    args = parser.parse_args()

    ensure_database(args.database_url)
    env = environment(args.database_url, args.redis_url)
    subprocess.run([sys.executable, "manage.py", "migrate", "--noinput", "-v", "0"], cwd=REPO, env=env, check=True)
    os.environ.update(env)
    import django

    django.setup()
    from django.conf import settings
    from django.contrib.auth.hashers import identify_hasher, make_password
    from django.test import Client, override_settings

    from deals.models import User

    user = User.objects.filter(username=USERNAME).first() or User.objects.create_user(USERNAME, password=PASSWORD)
    pbkdf2, argon2 = make_password(PASSWORD, hasher="pbkdf2_sha256"), make_password(PASSWORD, hasher="argon2")
    former = [name for name in settings.PASSWORD_HASHERS if "PBKDF2" in name] + [
        name for name in settings.PASSWORD_HASHERS if "PBKDF2" not in name
    ]
    kinds = {  # kind: (stored hash, PASSWORD_HASHERS in force)
        "before": (pbkdf2, former),
        "after": (argon2, settings.PASSWORD_HASHERS),
        "upgrade": (pbkdf2, settings.PASSWORD_HASHERS),
    }
    client = Client()

    def login(kind: str, password: str = PASSWORD) -> tuple[float, int]:
        stored, hashers = kinds[kind]
        User.objects.filter(pk=user.pk).update(password=stored)
        body = json.dumps({"username": USERNAME, "password": password})
        with override_settings(PASSWORD_HASHERS=hashers):
            started = time.perf_counter()
            response = client.post("/api/auth/token", body, content_type="application/json")
            elapsed = (time.perf_counter() - started) * 1000
        return elapsed, response.status_code

    for kind in kinds:  # warm up imports, connections and the hashers' libraries
        login(kind)
    timings: dict[str, list[float]] = {kind: [] for kind in kinds}
    for _ in range(args.logins):
        for kind in kinds:
            elapsed, status = login(kind)
            if status != 200:
                raise SystemExit(f"the {kind} login answered {status}")
            timings[kind].append(elapsed)
    login("upgrade")
    upgraded = identify_hasher(User.objects.get(pk=user.pk).password).algorithm
    login("before")
    kept = identify_hasher(User.objects.get(pk=user.pk).password).algorithm
    wrong = {kind: login(kind, "not-the-password") for kind in kinds}

    print(f"machine: {machine_note()}")
    print(f"{args.logins} logins per hasher, alternating; POST /api/auth/token in-process (ms)")
    print(f"{'login':<40}{'p50':>9}{'p95':>9}{'mean':>9}{'wrong password':>17}")
    labels = {
        "before": "before: PBKDF2-SHA256, 1M iterations",
        "after": "after: Argon2id",
        "upgrade": "upgrade: PBKDF2 hash, rehashed Argon2id",
    }
    for kind, values in timings.items():
        print(
            f"{labels[kind]:<40}{statistics.median(values):>9.1f}{percentile(values, 0.95):>9.1f}"
            f"{statistics.fmean(values):>9.1f}{wrong[kind][0]:>12.1f} ({wrong[kind][1]})"
        )
    ratio = statistics.median(timings["before"]) / statistics.median(timings["after"])
    print(f"p50 ratio before/after: {ratio:.1f}x")
    print(f"stored hash after an upgrade login: {upgraded}; after a login under the former settings: {kept}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
