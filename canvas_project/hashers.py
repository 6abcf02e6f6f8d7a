"""The password hasher of the service: Argon2id with OWASP's first recommended parameters.

Django's own Argon2 hasher asks for 100 MiB and 8 lanes per hash: on a 2-core machine the lanes only
queue, and a burst of logins holds 100 MiB each. OWASP's Password Storage Cheat Sheet lists equivalent
Argon2id settings; the first, m=19 MiB, t=2, p=1, is the cheapest in memory. The algorithm name stays
`argon2`, so hashes Django's hasher stored still verify, and Django rewrites them with these parameters at
the user's next login (`must_update`), as it does PBKDF2 hashes. bench/login.py measures the difference.
"""

from __future__ import annotations

from django.contrib.auth.hashers import Argon2PasswordHasher


class Argon2idHasher(Argon2PasswordHasher):
    time_cost = 2
    memory_cost = 19 * 1024  # KiB
    parallelism = 1
