"""Build hook: ship the top-level `templates/` and `static/` inside the wheel,
and the message catalogues compiled.

A checkout keeps them beside `quality/` (SPEC §2) and an editable install reads
them there; an installed wheel has no checkout, so the build copies them into
the package as `quality/templates` and `quality/static`, where
`quality/http/render.py` looks first. The `.po` catalogues are package data;
their `.mo` files are compiled here (a checkout compiles them with
`scripts/i18n compile`). Everything else is in pyproject.toml.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from setuptools import setup
from setuptools.command.build_py import build_py

ASSETS = ("templates", "static")


class BuildWithAssets(build_py):
    def run(self) -> None:
        super().run()
        if self.editable_mode:  # served from the checkout itself
            return
        for name in ASSETS:
            shutil.copytree(Path(name), Path(self.build_lib) / "quality" / name, dirs_exist_ok=True)
        for po_path in (Path(self.build_lib) / "quality" / "locale").glob("*/LC_MESSAGES/*.po"):
            with po_path.open("rb") as po, po_path.with_suffix(".mo").open("wb") as mo:
                write_mo(mo, read_po(po, locale=po_path.parents[1].name), use_fuzzy=False)


setup(cmdclass={"build_py": BuildWithAssets})
