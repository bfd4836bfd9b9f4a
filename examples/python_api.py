"""Build txt2img in Python, run it here over three seeds, and get the images back as PIL images.

Usage: python examples/python_api.py [--models DIR] [--out DIR] [--server URL] [--json]
With --server the same graph is submitted to a running `latentgraph serve` instead; with --json
it only prints the graph file it built. Uses models/checkpoints/tiny-sd1.safetensors (`make demo`
builds it), so the pictures are noise until you name a real checkpoint.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from engine.config import Paths
from engine.executor import Executor
from nodes.graph import (
    EmptyLatent,
    EncodeText,
    Graph,
    LoadCheckpoint,
    Sample,
    SampleNode,
    SaveImage,
    VAEDecode,
    VAEDecodeNode,
)


def build(
    checkpoint: str, steps: int = 8, size: int = 128
) -> tuple[Graph, SampleNode, VAEDecodeNode]:
    """txt2img with the ids graphs/txt2img.json uses; returns the graph, sampler and decoder."""
    g = Graph()
    ckpt = g.add(LoadCheckpoint, node_id="checkpoint", checkpoint=checkpoint)
    pos = g.add(EncodeText, node_id="positive", clip=ckpt.clip, text="a red fox in the snow")
    neg = g.add(EncodeText, node_id="negative", clip=ckpt.clip, text="blurry")
    latent = g.add(EmptyLatent, node_id="latent", width=size, height=size)
    sampler = g.add(
        Sample,
        node_id="sampler",
        model=ckpt.model,
        positive=pos.conditioning,
        negative=neg.conditioning,
        latent=latent.latent,
        seed=7,
        steps=steps,
    )
    decode = g.add(VAEDecode, node_id="decode", vae=ckpt.vae, latent=sampler.latent)
    g.add(SaveImage, node_id="save", images=decode.image, prefix="python_api")
    g.sweep(sampler, seed=[1, 2, 3])  # one run: the checkpoint loads and prompts encode once
    return g, sampler, decode


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--models", default="models")
    parser.add_argument("--out", default="output")
    parser.add_argument("--checkpoint", default="tiny-sd1.safetensors")
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--size", type=int, default=128, help="width and height (multiple of 8)")
    parser.add_argument("--server", help="submit to this server instead of running here")
    parser.add_argument("--json", action="store_true", help="print the graph file and stop")
    args = parser.parse_args()
    g, _, decode = build(args.checkpoint, args.steps, args.size)
    if args.json:
        print(g.to_json())
        return 0
    if args.server:
        from engine.client import Client

        job = Client(args.server).run(g, out=Path(args.out))
        for path in job.files:
            print(f"saved {path}")
        return 0
    executor = Executor(paths=Paths.resolve(models=args.models, output=args.out))
    results = g.run(executor, fetch=[decode])
    for combination in results.combinations:
        (image,) = combination.images(decode.image)
        files = ", ".join(str(p) for p in combination.files())
        print(f"{combination.sweep_values}: {image.size[0]}x{image.size[1]} image, wrote {files}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
