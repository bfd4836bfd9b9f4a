"""Submit a graph to a running `latentgraph serve`, follow it over the websocket, save its images.

Usage: python examples/client.py [GRAPH.json] [--server URL] [--token T] [--out DIR]
(default graph: graphs/txt2img.json; any graph works, e.g. graphs/hello.json)
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import uuid
from pathlib import Path

import aiohttp

DEFAULT_GRAPH = Path(__file__).resolve().parents[1] / "graphs" / "txt2img.json"


async def run(graph_file: Path, server: str, token: str | None, out: Path) -> int:
    graph = json.loads(graph_file.read_text(encoding="utf-8"))
    client_id = uuid.uuid4().hex  # random: whoever knows it hears our jobs
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with aiohttp.ClientSession(headers=headers) as http:
        # Connect first, so that no event of the job can be missed.
        async with http.ws_connect(f"{server}/ws", params={"client_id": client_id}) as ws:
            body = {"graph": graph, "client_id": client_id}
            async with http.post(f"{server}/api/v1/jobs", json=body) as response:
                answer = await response.json()
            if response.status != 201:
                print(f"rejected: {answer['message']}", file=sys.stderr)
                for error in answer.get("errors", []):
                    where = ".".join(p for p in (error["node_id"], error["input"]) if p)
                    print(f"  {where}: {error['message']} [{error['code']}]", file=sys.stderr)
                return 2
            job_id = answer["job_id"]
            print(f"job {job_id} queued (position {answer['position']})")
            async for message in ws:
                if message.type == aiohttp.WSMsgType.BINARY:
                    continue  # a JPEG preview of the current step; see docs/api/websocket.md
                if message.type != aiohttp.WSMsgType.TEXT:
                    break
                event = message.json()
                kind, data = event["type"], event["data"]
                if data.get("job_id") != job_id:
                    continue
                if kind == "nodes_cached" and data["nodes"]:
                    print(f"cached: {', '.join(data['nodes'])}")
                elif kind == "node_started":
                    print(f"{data['node_id']} ({data['node_type']})")
                elif kind == "progress":
                    print(f"  {data['node_id']}: {data['value']}/{data['max']}", end="\r")
                elif kind == "node_finished" and data["output"]:
                    await show(http, server, data["node_id"], data["output"], out)
                elif kind == "job_finished":
                    print(f"finished in {data['seconds']:.1f} s")
                    return 0
                elif kind == "job_failed":
                    error = data["error"]
                    print(f"failed ({error['code']}): {error['message']}", file=sys.stderr)
                    return 1
                elif kind in ("job_interrupted", "job_cancelled"):
                    print(kind.removeprefix("job_"), file=sys.stderr)
                    return 1
    print("the connection closed before the job ended", file=sys.stderr)
    return 1


async def show(
    http: aiohttp.ClientSession, server: str, node_id: str, output: dict, out: Path
) -> None:
    """Save the images a node produced and print anything else it shows."""
    for kind, items in output.items():
        for item in items:
            if isinstance(item, dict) and "url" in item:
                out.mkdir(parents=True, exist_ok=True)
                target = out / Path(item["filename"]).name
                async with http.get(server + item["url"]) as response:
                    response.raise_for_status()
                    target.write_bytes(await response.read())
                print(f"{node_id}: saved {target}")
            else:
                print(f"{node_id}: {kind} = {item}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("graph", nargs="?", type=Path, default=DEFAULT_GRAPH)
    parser.add_argument("--server", default="http://127.0.0.1:8188")
    parser.add_argument("--token", help="the server's bearer token, if it has one")
    parser.add_argument("--out", type=Path, default=Path("client_output"), help="image folder")
    args = parser.parse_args()
    if not args.graph.is_file():
        parser.error(f"no graph file {args.graph} (try graphs/hello.json)")
    return asyncio.run(run(args.graph, args.server.rstrip("/"), args.token, args.out))


if __name__ == "__main__":
    raise SystemExit(main())
