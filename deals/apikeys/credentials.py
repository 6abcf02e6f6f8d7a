"""What an API key looks like, and how it is stored: a public prefix for the lookup and a SHA-256 of the whole.

A key is `dck_<8 letters or digits>_<40 letters or digits>`: the first 12 characters (`dck_` and the 8) are its
`prefix`, unique and stored in clear so a request's key is found with one indexed lookup; the 40 after the
underscore are the secret, about 238 random bits from `secrets`. With that much entropy a plain SHA-256 is as
good as a slow password hash (nothing to guess, nothing to precompute) and costs microseconds per request,
where Argon2 would cost tens of milliseconds on every call. The stored hash is compared in constant time.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import string
from dataclasses import dataclass

MARK = "dck_"
PREFIX_RANDOM_CHARS = 8
SECRET_CHARS = 40
PREFIX_LENGTH = len(MARK) + PREFIX_RANDOM_CHARS
KEY_FORMAT = f"{MARK}<{PREFIX_RANDOM_CHARS} letters or digits>_<{SECRET_CHARS} letters or digits>"
KEY_PATTERN = re.compile(rf"{MARK}[A-Za-z0-9]{{{PREFIX_RANDOM_CHARS}}}_[A-Za-z0-9]{{{SECRET_CHARS}}}")
_ALPHABET = string.ascii_letters + string.digits


@dataclass(frozen=True)
class NewKey:
    key: str  # shown to its user once, never stored
    prefix: str
    key_hash: str


def _random(length: int) -> str:
    return "".join(secrets.choice(_ALPHABET) for _ in range(length))


def key_generate() -> NewKey:
    prefix = MARK + _random(PREFIX_RANDOM_CHARS)
    key = f"{prefix}_{_random(SECRET_CHARS)}"
    return NewKey(key=key, prefix=prefix, key_hash=key_hash(key))


def key_hash(key: str) -> str:
    return hashlib.sha256(key.encode("ascii")).hexdigest()


def key_prefix(presented: str) -> str | None:
    """The lookup prefix of a well-formed key; None when `presented` is not one."""
    if not KEY_PATTERN.fullmatch(presented):
        return None
    return presented[:PREFIX_LENGTH]


def key_matches(presented: str, stored_hash: str) -> bool:
    """Whether `presented` (a well-formed key) is the one `stored_hash` was made from; constant time, over
    bytes (hmac.compare_digest raises on non-ASCII str)."""
    return hmac.compare_digest(key_hash(presented).encode("ascii"), stored_hash.encode("ascii"))
