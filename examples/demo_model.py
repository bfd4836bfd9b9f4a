"""Build the tiny random-weight demo model (and an example input image) if they are missing.

The picture the demo makes is noise: these weights are random, only the loading code and the
file layouts are real. Run: .venv/bin/python examples/demo_model.py [MODELS_DIR] [INPUT_DIR]
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main(models: Path, inputs: Path) -> None:
    if not (models / "checkpoints" / "tiny-sd1.safetensors").exists():
        from tests.sd.tiny_models import build_tiny_models

        build_tiny_models(models)
        print(f"built the tiny random-weight demo models in {models}")
    example = inputs / "example.png"
    if not example.exists():
        from PIL import Image, ImageDraw

        inputs.mkdir(parents=True, exist_ok=True)
        image = Image.new("RGB", (128, 128), (40, 90, 160))
        ImageDraw.Draw(image).rectangle((32, 48, 96, 112), fill=(220, 200, 120))
        image.save(example)


if __name__ == "__main__":
    args = [Path(a) for a in sys.argv[1:]]
    main(args[0] if args else Path("models"), args[1] if len(args) > 1 else Path("input"))
