"""Encryption at rest of secrets the service must use again (today: the orgs' webhook signing secrets).

A secret the service only has to recognise (a password, an API key) is hashed. One it signs with has to be
readable, so it cannot be hashed: it is encrypted with Fernet (AES-128-CBC with HMAC-SHA256, from the
`cryptography` package) under a key derived from SECRETS_ENCRYPTION_KEY (SECRET_KEY unless set). A database
dump, a replica or a backup then holds no usable secret; whoever has both the database and the key has them
all. Changing the key makes the sealed secrets unreadable (SecretUnreadable): they have to be issued again.
"""

from __future__ import annotations

import base64
import hashlib
from functools import lru_cache

from cryptography.fernet import Fernet, InvalidToken
from django.conf import settings

_CONTEXT = b"deal-canvas secretbox v1\0"


class SecretUnreadable(Exception):
    """A sealed secret that does not open under the current key (the key changed, or the value is damaged)."""


@lru_cache(maxsize=4)
def _fernet(key: str) -> Fernet:
    return Fernet(base64.urlsafe_b64encode(hashlib.sha256(_CONTEXT + key.encode()).digest()))


def seal(secret: str) -> str:
    """The secret, encrypted and authenticated, as ASCII text for a database column."""
    return _fernet(settings.SECRETS_ENCRYPTION_KEY).encrypt(secret.encode()).decode("ascii")


def unseal(sealed: str) -> str:
    """The secret back. Raises SecretUnreadable."""
    try:
        return _fernet(settings.SECRETS_ENCRYPTION_KEY).decrypt(sealed.encode("ascii")).decode()
    except (InvalidToken, UnicodeError, ValueError):
        raise SecretUnreadable("The secret cannot be decrypted with the current SECRETS_ENCRYPTION_KEY.") from None
