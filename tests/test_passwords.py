"""Password hashing: argon2id at OWASP's cost with a random salt; older scrypt
hashes still verify and are marked for re-hashing."""

from __future__ import annotations

import base64
import hashlib

from quality.passwords import DUMMY_HASH, hash_password, needs_rehash, verify_password


def old_scrypt_hash(password: str) -> str:
    """A hash as the first version stored them (scrypt, N=2^14, r=8, p=1)."""
    salt = b"0123456789abcdef"
    digest = hashlib.scrypt(password.encode(), salt=salt, n=2**14, r=8, p=1, maxmem=64 * 2**20)
    return f"scrypt$16384$8$1${base64.b64encode(salt).decode()}${base64.b64encode(digest).decode()}"


def test_a_password_verifies_against_its_own_hash_only() -> None:
    stored = hash_password("correct-horse-42")
    assert stored.startswith("$argon2id$v=19$m=19456,t=2,p=1$")
    assert not needs_rehash(stored)
    assert verify_password("correct-horse-42", stored)
    assert not verify_password("correct-horse-43", stored)
    assert not verify_password("correct-horse-42", hash_password("another-one-99"))


def test_old_scrypt_hashes_verify_and_need_rehashing() -> None:
    stored = old_scrypt_hash("correct-horse-42")
    assert verify_password("correct-horse-42", stored)
    assert not verify_password("correct-horse-43", stored)
    assert needs_rehash(stored)
    assert needs_rehash("$argon2id$v=19$m=4096,t=1,p=1$c2FsdHNhbHQ$aGFzaGhhc2g")


def test_the_same_password_hashes_differently_each_time() -> None:
    assert hash_password("same-password") != hash_password("same-password")


def test_a_stored_value_that_is_not_ours_never_verifies() -> None:
    digest = hash_password("pw-123456").split("$", 1)[1]
    for stored in ("", "plain-text", "bcrypt$" + digest, "scrypt$x$8$1$AAAA$AAAA",
                   "scrypt$16384$8$1$not base64!$AAAA", "$argon2id$v=19$garbage"):
        assert not verify_password("pw-123456", stored)


def test_the_dummy_hash_matches_no_password_a_user_could_type() -> None:
    for guess in ("", "admin", "password"):
        assert not verify_password(guess, DUMMY_HASH)
