"""A person's own account: signing in and out (sign_in.py), changing their
password (password.py, /account) and choosing their language (language.py)."""
