"""Build hook: ship the top-level `templates/` and `static/` inside the wheel.

A checkout keeps them beside `quality/` (SPEC §2) and an editable install reads
them there; an installed wheel has no checkout, so the build copies them into
the package as `quality/templates` and `quality/static`, where
`quality/http/render.py` looks first. Everything else is in pyproject.toml.
"""

from __future__ import annotations

import shutil
from pathlib import Path

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


setup(cmdclass={"build_py": BuildWithAssets})
