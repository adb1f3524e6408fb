"""The dashboard ships in the wheel: ``web/`` is mapped into the package as
``uhaha/web`` (pyproject.toml), and the explicit package list that mapping
needs names every package of ``uhaha/`` and every mapped directory."""

from __future__ import annotations

import fnmatch
import tomllib

from tests.cluster.harness import ROOT
from uhaha.http.ui import web_dir


def test_the_package_list_names_every_package_and_the_page() -> None:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    on_disk = {
        ".".join(p.parent.relative_to(ROOT).parts) for p in (ROOT / "uhaha").rglob("__init__.py")
    }
    mapped = set(config["package-dir"])  # directories outside uhaha/: web/, ...
    assert "uhaha.web" in mapped
    assert set(config["packages"]) == on_disk | mapped, (
        "add new packages of uhaha/ to [tool.setuptools] packages in pyproject.toml"
    )
    assert config["package-dir"]["uhaha.web"] == "web"
    patterns = config["package-data"]["uhaha.web"]
    files = [p.name for p in (ROOT / "web").iterdir() if p.is_file()]
    assert {"index.html", "app.js", "style.css"} <= set(files)
    for name in files:
        assert any(fnmatch.fnmatch(name, pat) for pat in patterns), f"web/{name} would not ship"


def test_the_page_is_found() -> None:
    where = web_dir()
    assert where is not None and (where / "index.html").is_file()
