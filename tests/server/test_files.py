"""The view route cannot leave its folder; uploads are size-limited, verified and de-duplicated."""

from __future__ import annotations

import asyncio
import io
import os
from collections.abc import Callable
from pathlib import Path
from urllib.parse import quote

import aiohttp
import pytest
from PIL import Image
from yarl import URL

from server.settings import ServerSettings
from tests.server.harness import API, RunningServer

SECRET = "top secret contents"


def png(color: tuple[int, int, int] = (1, 2, 3), size: tuple[int, int] = (4, 4)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, color).save(buffer, format="PNG")
    return buffer.getvalue()


def form(data: bytes, filename: str = "cat.png", subfolder: str | None = None) -> aiohttp.FormData:
    body = aiohttp.FormData()
    body.add_field("image", data, filename=filename, content_type="image/png")
    if subfolder is not None:
        body.add_field("subfolder", subfolder)
    return body


@pytest.fixture
def folders(server: RunningServer, tmp_path: Path) -> RunningServer:
    """Outside files to aim at, and symlinks inside the folders pointing to them."""
    (tmp_path / "secret.txt").write_text(SECRET)
    (tmp_path / "outside").mkdir()
    (tmp_path / "outside" / "secret.png").write_text(SECRET)
    output, source = server.paths.output, server.paths.input
    (output / "ok.png").write_bytes(png())
    (output / "escape.png").symlink_to(tmp_path / "secret.txt")
    (output / "escape_dir").symlink_to(tmp_path / "outside", target_is_directory=True)
    (source / "escape_dir").symlink_to(tmp_path / "outside", target_is_directory=True)
    return server


# Raw query strings, sent exactly as written (percent-escapes included).
VIEW_PAYLOADS = [
    "filename=../secret.txt",
    "filename=..%2Fsecret.txt",
    "filename=%2e%2e%2fsecret.txt",
    "filename=%2E%2E/secret.txt",
    "filename=..%5Csecret.txt",
    "filename=....//secret.txt",
    "filename=%252e%252e%252fsecret.txt",
    "filename=%c0%ae%c0%ae/secret.txt",
    "filename=/etc/passwd",
    "filename=%2Fetc%2Fpasswd",
    "filename=C:%5CWindows%5Cwin.ini",
    "filename=%5C%5Cserver%5Cshare%5Cx.png",
    "filename=ok.png%00.txt",
    "filename=secret.txt&subfolder=..",
    "filename=secret.txt&subfolder=../",
    "filename=secret.txt&subfolder=%2E%2E",
    "filename=passwd&subfolder=/etc",
    "filename=passwd&subfolder=%2Fetc",
    "filename=secret.txt&subfolder=tests/../..",
    "filename=secret.txt&subfolder=.",
    "filename=jobs.sqlite3&subfolder=.latentgraph",
    "filename=.latentgraph%2Fjobs.sqlite3",
    "filename=escape.png",
    "filename=secret.png&subfolder=escape_dir",
    "filename=secret.png&subfolder=escape_dir&type=input",
    "filename=secret.txt&type=..",
    "filename=secret.txt&type=/tmp",
    "filename=~%2F.bashrc",
    "filename=ok.png%0A",
    "filename=",
    "subfolder=..",
]


def test_view_rejects_every_traversal_payload(folders: RunningServer) -> None:
    async def scenario() -> None:
        async with aiohttp.ClientSession() as http:
            async with http.get(f"{folders.url}{API}/view?filename=ok.png") as response:
                assert response.status == 200  # the control: a plain name works
                assert response.headers["X-Content-Type-Options"] == "nosniff"
            for query in VIEW_PAYLOADS:
                url = URL(f"{folders.url}{API}/view?{query}", encoded=True)
                async with http.get(url) as response:
                    body = await response.read()
                    assert response.status in (400, 403, 404), (query, response.status)
                    assert SECRET.encode() not in body, query
                    assert b"SQLite" not in body, query
                    error = await response.json()
                    assert error["error"] in ("bad_path", "outside_folder", "not_found"), query
                    assert error["message"]

    asyncio.run(scenario())


UPLOAD_PAYLOADS = [
    ("../evil.png", None),
    ("../../evil.png", None),
    ("/tmp/evil.png", None),
    ("..\\evil.png", None),
    ("sub/../../evil.png", None),
    ("C:\\evil.png", None),
    (".hidden.png", None),
    ("evil.png\x00.txt", None),
    ("%2e%2e%2fevil.png", None),
    ("cat.png", ".."),
    ("cat.png", "../.."),
    ("cat.png", "/tmp"),
    ("cat.png", "a/../../.."),
    ("cat.png", "a\\..\\.."),
    ("cat.png", "escape_dir"),
    ("cat.png", ".latentgraph"),
    ("cat.png", "%2e%2e"),
    ("cat.png", "a//b"),
    ("cat.png", "~"),
    ("cat.png", "a\x00b"),
]


def raw_form(data: bytes, filename: str, subfolder: str | None) -> tuple[bytes, str]:
    """A multipart body built by hand, so that names reach the server byte for byte.

    The file name travels as RFC 5987 `filename*` (percent-encoded UTF-8), which the server
    decodes exactly; aiohttp's own client refuses some of these names.
    """
    boundary = "latentgraph-test-boundary"
    parts = [
        f'--{boundary}\r\nContent-Disposition: form-data; name="image"; '
        f"filename*=UTF-8''{quote(filename, safe='')}\r\nContent-Type: image/png\r\n\r\n".encode()
        + data
        + b"\r\n"
    ]
    if subfolder is not None:
        parts.append(
            f'--{boundary}\r\nContent-Disposition: form-data; name="subfolder"\r\n\r\n'.encode()
            + subfolder.encode()
            + b"\r\n"
        )
    body = b"".join(parts) + f"--{boundary}--\r\n".encode()
    return body, f"multipart/form-data; boundary={boundary}"


def test_upload_rejects_every_traversal_payload(folders: RunningServer, tmp_path: Path) -> None:
    before = sorted(str(p) for p in tmp_path.rglob("*"))

    async def scenario() -> None:
        async with aiohttp.ClientSession() as http:
            body, kind = raw_form(png(), "fine.png", None)
            async with http.post(
                f"{folders.url}{API}/uploads", data=body, headers={"Content-Type": kind}
            ) as response:
                assert response.status == 201  # the control: the hand-built form works
                assert (await response.json())["name"] == "fine.png"
            (folders.paths.input / "fine.png").unlink()
            for filename, subfolder in UPLOAD_PAYLOADS:
                body, kind = raw_form(png(), filename, subfolder)
                async with http.post(
                    f"{folders.url}{API}/uploads", data=body, headers={"Content-Type": kind}
                ) as response:
                    assert response.status in (400, 403), (filename, subfolder, response.status)
                    error = await response.json()
                    assert error["error"] in ("bad_path", "outside_folder"), (filename, subfolder)

    asyncio.run(scenario())
    after = sorted(str(p) for p in tmp_path.rglob("*"))
    assert after == before  # nothing written anywhere


def test_uploads_are_verified_size_limited_and_stored_once(
    start: Callable[..., RunningServer],
) -> None:
    server = start(ServerSettings(max_upload_bytes=50_000))

    async def upload(http: aiohttp.ClientSession, data: bytes, **kwargs: str) -> tuple[int, dict]:
        async with http.post(f"{server.url}{API}/uploads", data=form(data, **kwargs)) as response:
            return response.status, await response.json()

    async def scenario() -> None:
        async with aiohttp.ClientSession() as http:
            status, first = await upload(http, png((9, 9, 9)), filename="cat.png")
            assert status == 201 and first["name"] == "cat.png" and not first["existing"]
            assert (first["width"], first["height"], first["format"]) == (4, 4, "PNG")
            async with http.get(server.url + first["url"]) as response:
                assert await response.read() == png((9, 9, 9))
            status, again = await upload(http, png((9, 9, 9)), filename="other-name.png")
            assert status == 200 and again["existing"] and again["name"] == "cat.png"
            status, different = await upload(http, png((8, 8, 8)), filename="cat.png")
            assert status == 201 and different["name"] == f"cat-{different['sha256'][:16]}.png"
            status, nested = await upload(http, png((7, 7, 7)), filename="x.jpeg", subfolder="a/b")
            assert status == 201 and (nested["subfolder"], nested["name"]) == ("a/b", "x.png")
            assert (server.paths.input / "a" / "b" / "x.png").is_file()

            status, error = await upload(http, os.urandom(60_000))
            assert (status, error["error"]) == (413, "too_large")
            assert "50000 bytes" in error["message"]
            status, error = await upload(http, b"hello, I am text\n" * 10, filename="a.png")
            assert (status, error["error"]) == (415, "not_an_image")
            truncated = png((1, 1, 1), size=(64, 64))
            status, error = await upload(http, truncated[: len(truncated) // 2])
            assert (status, error["error"]) == (400, "corrupt_image")
            corrupt = bytearray(png((2, 2, 2), size=(64, 64)))
            corrupt[60:80] = b"\x00" * 20  # inside the first chunk: its CRC no longer matches
            status, error = await upload(http, bytes(corrupt))
            assert (status, error["error"]) == (400, "corrupt_image")
            tiff = io.BytesIO()
            Image.new("RGB", (4, 4)).save(tiff, format="TIFF")
            status, error = await upload(http, tiff.getvalue(), filename="x.tiff")
            assert (status, error["error"]) == (415, "unsupported_format")
            async with http.post(f"{server.url}{API}/uploads", json={"image": "x"}) as response:
                assert response.status == 415
            empty = aiohttp.FormData(default_to_multipart=True)
            empty.add_field("subfolder", "x")
            async with http.post(f"{server.url}{API}/uploads", data=empty) as response:
                assert response.status == 400
                assert "no `image`" in (await response.json())["message"]
        stored = sorted(p.name for p in server.paths.input.rglob("*") if p.is_file())
        assert stored == sorted(["cat.png", different["name"], "x.png"])

    asyncio.run(scenario())


def test_non_image_files_are_served_as_downloads(server: RunningServer) -> None:
    (server.paths.output / "page.html").write_text("<script>alert(1)</script>")

    async def scenario() -> None:
        async with aiohttp.ClientSession() as http:
            async with http.get(f"{server.url}{API}/view?filename=page.html") as response:
                assert response.status == 200
                assert response.headers["Content-Type"] == "application/octet-stream"
                assert response.headers["Content-Disposition"] == "attachment"
                assert "sandbox" in response.headers["Content-Security-Policy"]

    asyncio.run(scenario())
