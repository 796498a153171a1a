"""Password hashing: scrypt with a random salt, verified in constant time."""

from __future__ import annotations

from quality.passwords import DUMMY_HASH, hash_password, verify_password


def test_a_password_verifies_against_its_own_hash_only() -> None:
    stored = hash_password("correct-horse-42")
    assert stored.startswith("scrypt$16384$8$1$")
    assert verify_password("correct-horse-42", stored)
    assert not verify_password("correct-horse-43", stored)
    assert not verify_password("correct-horse-42", hash_password("another-one-99"))


def test_the_same_password_hashes_differently_each_time() -> None:
    assert hash_password("same-password") != hash_password("same-password")


def test_a_stored_value_that_is_not_ours_never_verifies() -> None:
    digest = hash_password("pw-123456").split("$", 1)[1]
    for stored in ("", "plain-text", "bcrypt$" + digest, "scrypt$x$8$1$AAAA$AAAA",
                   "scrypt$16384$8$1$not base64!$AAAA"):
        assert not verify_password("pw-123456", stored)


def test_the_dummy_hash_matches_no_password_a_user_could_type() -> None:
    for guess in ("", "admin", "password"):
        assert not verify_password(guess, DUMMY_HASH)
