"""The example graphs ship inside the wheel: a `latentgraph serve` installed from it, run away from
any checkout, lists and serves the same graphs as graphs/ of this checkout."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
# What a wheel is built from (pyproject.toml names the packages; setup.py adds graphs/).
SOURCES = (
    "pyproject.toml",
    "setup.py",
    "MANIFEST.in",
    "README.md",
    "engine",
    "nodes",
    "server",
    "graphs",
)


def build_wheel(tmp: Path) -> Path:
    source = tmp / "src"
    source.mkdir()
    for name in SOURCES:
        path = ROOT / name
        if path.is_dir():
            shutil.copytree(path, source / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy(path, source / name)
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation",
         "--no-index", "--disable-pip-version-check", "-w", str(tmp / "dist"), str(source)],
        check=True, cwd=tmp, timeout=240,
    )  # fmt: skip
    (wheel,) = (tmp / "dist").glob("latentgraph-*.whl")
    return wheel


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def get_json(url: str) -> object:
    with urllib.request.urlopen(url, timeout=5) as response:
        return json.loads(response.read())


def test_an_installed_wheel_lists_and_serves_the_example_graphs(tmp_path: Path) -> None:
    wheel = build_wheel(tmp_path)
    shipped = sorted(p.stem for p in (ROOT / "graphs").glob("*.json"))
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        archive.extractall(tmp_path / "site")
    assert sorted(Path(n).stem for n in names if n.startswith("server/example_graphs/")) == shipped
    assert not any(n.startswith("graphs/") for n in names)  # no top-level `graphs` package

    # The installed package, run from an empty folder: no checkout on its path.
    work = tmp_path / "work"
    work.mkdir()
    env = {**os.environ, "PYTHONPATH": str(tmp_path / "site"), "HF_HUB_OFFLINE": "1"}
    where = subprocess.run(
        [sys.executable, "-c", "import server.api_editor as m; print(m.GRAPHS_DIR)"],
        cwd=work, env=env, capture_output=True, text=True, check=True,
    ).stdout.strip()  # fmt: skip
    assert Path(where) == tmp_path / "site" / "server" / "example_graphs"

    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "latentgraph_cli", "serve", "--port", str(port),
         "--models", str(work / "models"), "--input", str(work / "input"), "--output", str(work / "output")],
        cwd=work, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )  # fmt: skip
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 90
        while True:
            try:
                listed = get_json(f"{url}/api/v1/graphs")
                break
            except OSError:
                assert process.poll() is None, (
                    process.stderr.read().decode() if process.stderr else ""
                )
                assert time.monotonic() < deadline, "the installed server did not start"
                time.sleep(0.2)
        assert isinstance(listed, dict)
        assert sorted(g["name"] for g in listed["graphs"]) == shipped
        txt2img = json.loads((ROOT / "graphs" / "txt2img.json").read_text())
        assert get_json(f"{url}/api/v1/graphs/txt2img") == txt2img
    finally:
        process.terminate()
        process.wait(30)
