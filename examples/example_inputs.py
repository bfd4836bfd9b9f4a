"""Write the input images the example graphs read (deterministic; nothing is trained or downloaded).

    .venv/bin/python examples/example_inputs.py [INPUT_DIR]      # default: input/

- `example.png`: a red circle on a white background, left (read by graphs/img2img.json);
- `example-inpaint.png`: the same picture with the circle's surroundings transparent, which
  LoadImage turns into the inpainting mask (read by graphs/inpaint.json);
- `example-hint.png`: a white square on black, top right: the ControlNet hint
  (read by graphs/controlnet.json).
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from train.shapes import Scene, render, silhouette

SOURCE = Scene("circle", "red", ("white",), "vertical", 16.0, 32.0, 24.0, (0, 1))
HINT = Scene("square", "red", ("black",), "vertical", 46.0, 18.0, 24.0, (2, 0))


def main(inputs: Path) -> None:
    inputs.mkdir(parents=True, exist_ok=True)
    picture = render(SOURCE)
    Image.fromarray(picture).save(inputs / "example.png")
    alpha = np.full(picture.shape[:2], 255, dtype=np.uint8)
    alpha[16:48, 0:32] = 0  # whole 8 px latent cells around the circle: the region to repaint
    Image.fromarray(np.dstack([picture, alpha])).save(inputs / "example-inpaint.png")
    hint = (silhouette(HINT) * 255).round().astype(np.uint8)
    Image.fromarray(hint).convert("RGB").save(inputs / "example-hint.png")
    print(f"wrote example.png, example-inpaint.png and example-hint.png in {inputs}")


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else Path("input"))
