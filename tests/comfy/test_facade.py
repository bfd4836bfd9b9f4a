"""ComfyUI-style clients work unchanged against a real `latentgraph serve`.

The websocket client is what ComfyUI's script_examples/websockets_api_example.py does, written
with the standard library only (tests/comfy/ws_client.py); HTTP goes through urllib.
"""

from __future__ import annotations

import io
import json
import os
import socket
import struct
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from PIL import Image as PILImage

from nodes.sd.tiny_models import TinyModels
from tests.comfy import workflows
from tests.comfy.ws_client import WebSocket

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture(scope="module")
def server(tiny_models: TinyModels, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    root = tmp_path_factory.mktemp("facade")
    (root / "input").mkdir()
    PILImage.new("RGBA", (64, 64), (10, 200, 30, 255)).save(root / "input" / "hint.png")
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "latentgraph_cli", "serve", "--port", str(port),
         "--models", str(tiny_models.models_dir), "--input", str(root / "input"),
         "--output", str(root / "output")],
        cwd=ROOT, env={**os.environ, "HF_HUB_OFFLINE": "1"},
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 90
    while True:
        try:
            urllib.request.urlopen(f"{url}/system_stats", timeout=2).close()
            break
        except OSError:
            if process.poll() is not None or time.monotonic() > deadline:
                process.kill()
                stderr = process.stderr.read().decode() if process.stderr else ""
                raise AssertionError(stderr) from None
            time.sleep(0.2)
    try:
        yield url
    finally:
        process.terminate()
        try:
            process.wait(60)
        except subprocess.TimeoutExpired:  # a loaded machine can be slow to shut down cleanly
            process.kill()
            process.wait(30)


# --- The client, as ComfyUI's example scripts write it. ---


def queue_prompt(url: str, prompt: dict[str, Any], client_id: str | None = None) -> Any:
    body: dict[str, Any] = {"prompt": prompt}
    if client_id is not None:
        body["client_id"] = client_id
    request = urllib.request.Request(f"{url}/prompt", data=json.dumps(body).encode())
    return json.loads(urllib.request.urlopen(request, timeout=30).read())


def get_json(url: str, path: str) -> Any:
    with urllib.request.urlopen(f"{url}{path}", timeout=30) as response:
        return json.loads(response.read())


def get_image(url: str, filename: str, subfolder: str, folder_type: str) -> bytes:
    query = urllib.parse.urlencode(
        {"filename": filename, "subfolder": subfolder, "type": folder_type}
    )
    with urllib.request.urlopen(f"{url}/view?{query}", timeout=30) as response:
        return bytes(response.read())


def small_prompt(seed: int) -> dict[str, Any]:
    prompt = workflows.api_txt2img()
    prompt["3"]["inputs"]["seed"] = seed
    prompt["3"]["inputs"]["steps"] = 2
    return prompt


def test_websocket_client_as_in_comfyuis_example(server: str) -> None:
    client_id = str(uuid.uuid4())
    ws = WebSocket(f"ws://{server.removeprefix('http://')}/ws?clientId={client_id}")
    try:
        first = json.loads(ws.recv())
        assert first["type"] == "status" and first["data"]["sid"] == client_id
        prompt_id = queue_prompt(server, small_prompt(5), client_id)["prompt_id"]
        messages, binary = [], []
        while True:
            out = ws.recv()
            if isinstance(out, bytes):
                binary.append(out)
                continue
            message = json.loads(out)
            messages.append(message)
            data = message["data"]
            if message["type"] == "executing" and data["node"] is None:
                if data["prompt_id"] == prompt_id:
                    break  # execution is done
    finally:
        ws.close()
    kinds = [m["type"] for m in messages]
    assert (
        kinds.index("execution_start") < kinds.index("execution_cached") < kinds.index("executing")
    )
    assert "execution_success" in kinds
    ran = [m["data"]["node"] for m in messages if m["type"] == "executing"]
    assert {"4", "6", "7", "5", "3", "8", "9"} <= set(ran)  # ComfyUI's ids, not ours
    progress = [m["data"] for m in messages if m["type"] == "progress"]
    assert progress and progress[-1]["value"] == progress[-1]["max"] == 2
    assert progress[0]["node"] == "3" and progress[0]["prompt_id"] == prompt_id
    (executed,) = [m["data"] for m in messages if m["type"] == "executed"]
    assert executed["node"] == "9" and executed["output"]["images"]

    history = get_json(server, f"/history/{prompt_id}")[prompt_id]
    assert history["status"]["status_str"] == "success" and history["status"]["completed"]
    assert (
        history["prompt"][1] == prompt_id and history["prompt"][2]["3"]["class_type"] == "KSampler"
    )
    images = []
    for node_output in history["outputs"].values():
        for image in node_output.get("images", []):
            images.append(get_image(server, image["filename"], image["subfolder"], image["type"]))
    assert len(images) == 1 and images[0].startswith(b"\x89PNG")
    assert binary, "no preview frames"
    for frame in binary:  # ComfyUI's preview framing: event 1, image type 1 (JPEG), the image
        event, image_type = struct.unpack(">II", frame[:8])
        assert (event, image_type) == (1, 1) and frame[8:10] == b"\xff\xd8"


def test_polling_style_client_and_the_other_routes(server: str) -> None:
    answer = queue_prompt(server, small_prompt(6))
    prompt_id = answer["prompt_id"]
    assert answer["node_errors"] == {} and isinstance(answer["number"], (int, float))
    assert set(get_json(server, "/queue")) == {"queue_running", "queue_pending"}
    deadline = time.monotonic() + 120
    while not (history := get_json(server, f"/history/{prompt_id}")):
        assert time.monotonic() < deadline, "the prompt did not finish"
        time.sleep(0.3)
    assert history[prompt_id]["outputs"]["9"]["images"][0]["filename"].endswith(".png")
    assert get_json(server, "/prompt") == {"exec_info": {"queue_remaining": 0}}
    assert prompt_id in get_json(server, "/api/history?max_items=5")
    assert len(get_json(server, "/history?max_items=1&offset=0")) == 1

    ksampler = get_json(server, "/api/object_info/KSampler")["KSampler"]
    seed = ksampler["input"]["required"]["seed"][1]
    assert seed["control_after_generate"] is True and seed["max"] == 2**64 - 1
    assert "euler_ancestral" in ksampler["input"]["required"]["sampler_name"][0]
    assert ksampler["input_order"]["required"][:2] == ["model", "seed"]
    assert ksampler["output"] == ["LATENT"]
    assert get_json(server, "/object_info/NoSuchNode") == {}
    assert "CheckpointLoaderSimple" in get_json(server, "/object_info")
    assert get_json(server, "/models/checkpoints") == ["tiny-sd1-diffusers", "tiny-sd1.safetensors"]
    assert "checkpoints" in get_json(server, "/api/models")
    assert get_json(server, "/embeddings") == [] and get_json(server, "/extensions") == []
    assert "comfyui_version" in get_json(server, "/system_stats")["system"]

    # Our own API sees the same job, and accepts ComfyUI documents too.
    job = get_json(server, f"/api/v1/jobs/{prompt_id}")
    assert job["status"] == "finished" and job["graph"]["nodes"]["n3"]["type"] == "Sample"
    convert = urllib.request.Request(
        f"{server}/api/v1/graphs/convert",
        data=json.dumps({"document": workflows.workflow_txt2img()}).encode(),
        headers={"Content-Type": "application/json"},
    )
    converted = json.loads(urllib.request.urlopen(convert, timeout=30).read())
    assert converted["format"] == "comfyui-workflow"
    assert converted["graph"]["editor"]["nodes"]["n3"]["comfy_id"] == "3"


def test_invalid_prompts_get_comfyuis_error_shape(server: str) -> None:
    prompt = small_prompt(7)
    prompt["3"]["inputs"]["sampler_name"] = "lcm"
    prompt["2"] = {"class_type": "NotANode", "inputs": {}}
    with pytest.raises(urllib.error.HTTPError) as caught:
        queue_prompt(server, prompt)
    assert caught.value.code == 400
    body = json.loads(caught.value.read())
    assert body["node_errors"]["3"]["class_type"] == "KSampler"
    (error,) = body["node_errors"]["3"]["errors"]
    assert error["type"] == "value_not_in_list"
    assert error["extra_info"]["input_name"] == "sampler_name"
    assert body["node_errors"]["2"]["errors"][0]["type"] == "missing_node_type"
    submit = urllib.request.Request(
        f"{server}/api/v1/jobs",
        data=json.dumps({"graph": prompt}).encode(),
        headers={"Content-Type": "application/json"},
    )
    with pytest.raises(urllib.error.HTTPError) as caught:
        urllib.request.urlopen(submit, timeout=30)
    errors = json.loads(caught.value.read())["errors"]
    assert {(e["node_id"], e["input"]) for e in errors} == {("3", "sampler_name"), ("2", None)}


def test_upload_image_and_queue_controls(server: str) -> None:
    boundary = "----latentgraph"
    buffer = io.BytesIO()
    PILImage.new("RGB", (16, 16), (1, 2, 3)).save(buffer, format="PNG")
    body = (
        (
            f'--{boundary}\r\nContent-Disposition: form-data; name="image"; filename="up.png"\r\n'
            "Content-Type: image/png\r\n\r\n"
        ).encode()
        + buffer.getvalue()
        + (
            f'\r\n--{boundary}\r\nContent-Disposition: form-data; name="overwrite"\r\n\r\ntrue\r\n'
            f"--{boundary}--\r\n"
        ).encode()
    )
    request = urllib.request.Request(
        f"{server}/upload/image",
        data=body,
        headers={"Content-Type": f"multipart/form-data; boundary={boundary}"},
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        assert response.status == 200
        assert json.loads(response.read()) == {"name": "up.png", "subfolder": "", "type": "input"}
    assert get_image(server, "up.png", "", "input").startswith(b"\x89PNG")
    for path, payload in (
        ("/queue", {"clear": True}),
        ("/interrupt", {}),
        ("/free", {"unload_models": True}),
    ):
        posted = urllib.request.Request(f"{server}{path}", data=json.dumps(payload).encode())
        assert urllib.request.urlopen(posted, timeout=30).status == 200


def test_convert_route_opens_a_comfyui_png(server: str) -> None:
    from PIL import PngImagePlugin

    info = PngImagePlugin.PngInfo()
    info.add_text("prompt", json.dumps(workflows.api_txt2img()))
    buffer = io.BytesIO()
    PILImage.new("RGB", (8, 8)).save(buffer, format="PNG", pnginfo=info)
    request = urllib.request.Request(
        f"{server}/api/v1/graphs/convert",
        data=buffer.getvalue(),
        headers={"Content-Type": "image/png"},
    )
    converted = json.loads(urllib.request.urlopen(request, timeout=30).read())
    assert converted["format"] == "comfyui-api"
    assert converted["graph"]["nodes"]["n3"]["inputs"]["seed"] == 7
    plain = io.BytesIO()
    PILImage.new("RGB", (8, 8)).save(plain, format="PNG")
    request = urllib.request.Request(
        f"{server}/api/v1/graphs/convert",
        data=plain.getvalue(),
        headers={"Content-Type": "image/png"},
    )
    with pytest.raises(urllib.error.HTTPError) as caught:
        urllib.request.urlopen(request, timeout=30)
    assert caught.value.code == 400


def test_our_security_defaults_guard_the_facade(server: str) -> None:
    body = json.dumps({"prompt": small_prompt(8)}).encode()
    for path in ("/prompt", "/api/prompt"):
        request = urllib.request.Request(
            f"{server}{path}", data=body, headers={"Origin": "http://evil.example"}
        )
        with pytest.raises(urllib.error.HTTPError) as caught:
            urllib.request.urlopen(request, timeout=30)
        assert caught.value.code == 403
    foreign_host = urllib.request.Request(f"{server}/queue", headers={"Host": "evil.example"})
    with pytest.raises(urllib.error.HTTPError) as caught:
        urllib.request.urlopen(foreign_host, timeout=30)
    assert caught.value.code == 403
