"""Build hook: the example graphs in graphs/ ship inside the package as server/example_graphs/.

Everything else is in pyproject.toml. graphs/ stays the one copy in the checkout (the README, the
tests and `latentgraph run graphs/...` use it); setuptools cannot map a folder outside a package
into one as package data, so build_py copies it.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

GRAPHS = Path(__file__).resolve().parent / "graphs"
PACKAGED = Path("server") / "example_graphs"


class BuildWithExampleGraphs(build_py):
    """build_py, plus graphs/*.json copied to server/example_graphs/ in the build."""

    def run(self) -> None:
        super().run()
        target = Path(self.build_lib) / PACKAGED
        target.mkdir(parents=True, exist_ok=True)
        for path in sorted(GRAPHS.glob("*.json")):
            shutil.copyfile(path, target / path.name)


setup(cmdclass={"build_py": BuildWithExampleGraphs})
