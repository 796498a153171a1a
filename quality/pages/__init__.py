"""The pages: one package (or module) per part of the site a person sees,
named after it, each bringing its routes. Only quality/app.py imports them;
they import the domain (quality/*) and quality/http/, never each other
(pyproject.toml's import contracts, tests/test_imports.py)."""
