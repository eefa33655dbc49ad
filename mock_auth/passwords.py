"""Password hashing in Better Auth's own format, so stored hashes look like the real thing.

Better Auth hashes with scrypt (N=16384, r=16, p=1, 64-byte key) over the NFKC-normalised password,
salted with 16 random bytes written as hex, and stores `salt:key` in hex.
"""

import hashlib
import hmac
import secrets
import unicodedata

_N, _R, _P, _DKLEN = 16384, 16, 1, 64
_MAXMEM = 2 * 128 * _N * _R * _P


def _derive(password: str, salt: str) -> bytes:
    normalised = unicodedata.normalize("NFKC", password).encode()
    return hashlib.scrypt(
        normalised, salt=salt.encode(), n=_N, r=_R, p=_P, dklen=_DKLEN, maxmem=_MAXMEM
    )


def hash_password(password: str) -> str:
    salt = secrets.token_hex(16)
    return f"{salt}:{_derive(password, salt).hex()}"


def verify_password(password: str, stored: str) -> bool:
    salt, _, expected = stored.partition(":")
    return hmac.compare_digest(_derive(password, salt).hex(), expected)


DUMMY_HASH = hash_password(secrets.token_hex(16))
"""Checked against when the email is unknown, so a miss costs as much time as a wrong password."""
