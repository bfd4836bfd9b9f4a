"""The Python API on the real SD nodes: txt2img built in code equals graphs/txt2img.json, and sweeps."""

from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import torch
from PIL import Image as PILImage

import nodes.latent
import nodes.loaders
import nodes.sampling
import nodes.text
from engine.builder import Graph, GraphBuildError
from engine.config import Paths
from engine.errors import ErrorCode
from engine.executor import Executor
from engine.registry import default_registry
from nodes.image import SaveImage
from nodes.latent import EmptyLatent
from nodes.loaders import LoadCheckpoint
from nodes.sampling import Sample
from nodes.sd.tiny_models import TinyModels
from nodes.text import EncodeText
from nodes.vae import VAEDecode
from tests.sd.infotext_reader import read_parameters

ROOT = Path(__file__).resolve().parents[2]
TXT2IMG = json.loads((ROOT / "graphs" / "txt2img.json").read_text())


@pytest.fixture
def folders(tiny_models: TinyModels, tmp_path: Path) -> Paths:
    return Paths.resolve(models=tiny_models.models_dir, input=tmp_path, output=tmp_path / "out")


def txt2img(size: int = 64, **sampler: Any) -> tuple[Graph, Any, Any]:
    """graphs/txt2img.json, built in Python with the same ids (at `size`, with `sampler` changes)."""
    g = Graph()
    ckpt = g.add(LoadCheckpoint, node_id="checkpoint", checkpoint="latentgraph-shapes.safetensors")
    pos = g.add(
        EncodeText, node_id="positive", text="a red circle on a blue background", clip=ckpt.clip
    )
    neg = g.add(EncodeText, node_id="negative", text="", clip=ckpt.clip)
    latent = g.add(EmptyLatent, node_id="latent", width=size, height=size, batch_size=1)
    settings = {"seed": 7, "steps": 20, "cfg": 7.5, "sampler": "euler", "scheduler": "normal"}
    sample = g.add(
        Sample,
        node_id="sampler",
        **{**settings, **sampler},
        model=ckpt.model,
        positive=pos.conditioning,
        negative=neg.conditioning,
        latent=latent.latent,
    )
    decode = g.add(VAEDecode, node_id="decode", vae=ckpt.vae, latent=sample.latent)
    g.add(SaveImage, node_id="save", prefix="txt2img", images=decode.image)
    return g, sample, decode


def test_txt2img_in_python_is_the_same_json_and_the_same_image(folders: Paths) -> None:
    g, _, decode = txt2img()
    file_graph = {k: v for k, v in TXT2IMG.items() if k != "editor"}
    assert g.to_dict() == file_graph
    assert Graph.from_dict(TXT2IMG).to_dict() == file_graph  # and back, with the same ids

    g, _, decode = txt2img(size=64, steps=2)
    executor = Executor(default_registry(), paths=folders)
    results = g.run(executor, fetch=[decode])
    (image,) = results.images(decode.image)
    assert isinstance(image, PILImage.Image) and image.size == (64, 64)
    assert isinstance(results.value(decode.image).pixels, torch.Tensor)
    (written,) = results.files()
    assert written.name == "txt2img_00001.png"

    document = json.loads(json.dumps(TXT2IMG))
    document["nodes"]["sampler"]["inputs"]["steps"] = 2
    document["nodes"]["latent"]["inputs"].update(width=64, height=64)
    executor.cache.clear()
    Executor(default_registry(), paths=folders).run(document)
    from_file = PILImage.open(folders.output / "txt2img_00002.png")
    assert list(from_file.getdata()) == list(PILImage.open(written).getdata())
    assert list(image.getdata()) == list(from_file.convert("RGB").getdata())


def test_a_wrong_input_name_or_port_type_raises_at_the_call() -> None:
    g = Graph()
    ckpt = g.add(LoadCheckpoint, checkpoint="tiny-sd1.safetensors")
    with pytest.raises(GraphBuildError) as wrong_name:
        g.add(EncodeText, clip=ckpt.clip, txt="a fox")
    (error,) = wrong_name.value.errors
    assert error.code == ErrorCode.UNKNOWN_INPUT and error.input == "txt"
    assert str(wrong_name.value) == (
        "encode_text.txt: EncodeText has no input 'txt' (inputs: clip, text, clip_skip)"
        " [unknown_input]"
    )
    with pytest.raises(GraphBuildError) as wrong_type:
        g.add(EncodeText, clip=ckpt.vae, text="a fox")
    assert str(wrong_type.value) == (
        "encode_text.clip: EncodeText.clip expects CLIP but load_checkpoint.vae is VAE"
        " [type_mismatch]"
    )
    with pytest.raises(GraphBuildError, match=r"steps: 0 is out of range"):
        g.add(Sample, steps=0)  # also missing links: every mistake of the call is listed
    with pytest.raises(
        AttributeError, match=r"has no output 'clipp' \(outputs: model, clip, vae\)"
    ):
        _ = ckpt.clipp
    assert len(g) == 1  # nothing half-added


def test_auto_ids_are_readable_and_unique() -> None:
    g = Graph()
    ckpt = g.add(LoadCheckpoint, checkpoint="tiny-sd1.safetensors")
    a = g.add(EncodeText, clip=ckpt.clip, text="a")
    b = g.add(EncodeText, clip=ckpt.clip, text="b")
    assert [ckpt.id, a.id, b.id] == ["load_checkpoint", "encode_text", "encode_text_2"]
    assert g.add(VAEDecode, vae=ckpt.vae, latent=g.add(EmptyLatent).latent).id == "vae_decode"


def counting(monkeypatch: pytest.MonkeyPatch) -> Counter[str]:
    """Count real `run` calls of the loader, the text encoder and the sampler."""
    calls: Counter[str] = Counter()
    for module, name in (
        (nodes.loaders, "LoadCheckpoint"),
        (nodes.text, "EncodeText"),
        (nodes.sampling, "Sample"),
        (nodes.latent, "EmptyLatent"),
    ):
        cls = getattr(module, name)
        original = cls.run

        def wrapped(self: Any, ctx: Any, _original: Any = original, _name: str = name) -> Any:
            calls[_name] += 1
            return _original(self, ctx)

        monkeypatch.setattr(cls, "run", wrapped)
    return calls


def test_a_seed_sweep_loads_and_encodes_once_and_samples_three_times(
    folders: Paths, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = counting(monkeypatch)
    g, sample, decode = txt2img(size=64, steps=2)
    g.sweep(sample, seed=[1, 2, 3])
    results = g.run(Executor(default_registry(), paths=folders), fetch=[decode])
    assert calls == {"LoadCheckpoint": 1, "EncodeText": 2, "EmptyLatent": 1, "Sample": 3}
    files = results.files()
    assert [f.name for f in files] == [f"txt2img_seed{s}_00001.png" for s in (1, 2, 3)]
    for seed, file in zip((1, 2, 3), files, strict=True):
        text = PILImage.open(file).text
        assert read_parameters(file).settings["seed"] == str(seed)  # A1111-style parameters
        graph = json.loads(text["latentgraph.graph"])
        assert graph["nodes"]["sampler"]["inputs"]["seed"] == seed and "sweep" not in graph
    views = results.combinations
    assert [v.sweep_values for v in views] == [{"sampler.seed": s} for s in (1, 2, 3)]
    first, second = (v.value(decode.image).pixels for v in views[:2])
    assert not torch.equal(first, second)
    assert [v.files()[0].name for v in views] == [f.name for f in files]


def test_the_typed_graph_module_is_current() -> None:
    from engine.typed_graph import TARGET, builtin_registry, render

    assert TARGET.read_text() == render(builtin_registry()), "run: python -m engine.typed_graph"


def test_the_type_checker_rejects_a_wrong_port_and_a_wrong_input_name(tmp_path: Path) -> None:
    snippet = tmp_path / "snippet.py"
    snippet.write_text(
        "from nodes.graph import EncodeText, Graph, LoadCheckpoint\n"
        "g = Graph()\n"
        'ckpt = g.add(LoadCheckpoint, checkpoint="x.safetensors")\n'
        'g.add(EncodeText, clip=ckpt.clip, text="fine")\n'
        'g.add(EncodeText, clip=ckpt.vae, text="wrong port")\n'
        'g.add(EncodeText, clip=ckpt.clip, txt="wrong name")\n'
        "reveal_type(ckpt.model)\n"
    )
    checked = subprocess.run(
        [sys.executable, "-m", "mypy", "--follow-imports=silent", str(snippet)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    lines = [line.split(": ", 1)[1] for line in checked.stdout.splitlines() if ": " in line]
    assert 'Revealed type is "engine.builder.Port[nodes.sd.values.UNetModel]"' in "\n".join(lines)
    errors = [line for line in checked.stdout.splitlines() if ": error:" in line]
    assert [e.split(":")[1] for e in errors] == ["5", "6"], checked.stdout
    assert 'has incompatible type "Port[VaeModel]"; expected "Port[ClipModel]"' in errors[0]


def test_the_example_script_sweeps_three_seeds(tiny_models: TinyModels, tmp_path: Path) -> None:
    done = subprocess.run(
        [
            sys.executable,
            str(ROOT / "examples" / "python_api.py"),
            "--models",
            str(tiny_models.models_dir),
            "--out",
            str(tmp_path),
            "--steps",
            "2",
            "--size",
            "64",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert [line.split(":")[0] for line in lines] == [
        "{'sampler.seed'",
        "{'sampler.seed'",
        "{'sampler.seed'",
    ]
    assert sorted(p.name for p in tmp_path.glob("*.png")) == [
        f"python_api_seed{s}_00001.png" for s in (1, 2, 3)
    ]


def test_the_prompts_subgraph_shares_all_work_with_txt2img(
    folders: Paths, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LATENTGRAPH_SUBGRAPHS", str(ROOT / "subgraphs"))
    plain = json.loads(json.dumps(TXT2IMG))
    composed = json.loads((ROOT / "graphs" / "txt2img_subgraph.json").read_text())
    for graph in (plain, composed):
        graph["nodes"]["sampler"]["inputs"]["steps"] = 2
        graph["nodes"]["latent"]["inputs"].update(width=64, height=64)
    executor = Executor(default_registry(), paths=folders)
    first = executor.run(plain)
    again = executor.run(composed)
    # Inner nodes have the same lineage keys as txt2img's own encoders: nothing runs again.
    assert again.status == "finished" and again.executed == []
    assert again.ui["save"] == first.ui["save"]
    assert executor.validate(composed).nodes["prompts/negative"].literals["text"] == ""
