"""`latentgraph serve --ray`: the flags parse, and bad combinations are refused before anything starts."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine.config import Paths
from latentgraph_cli.main import _parser
from server.cli import serve


def test_the_ray_flags_parse() -> None:
    args = _parser().parse_args(["serve", "--ray", "auto", "--ray-workers", "2"])
    assert (args.ray, args.ray_workers) == ("auto", 2)
    assert _parser().parse_args(["serve"]).ray is None


@pytest.mark.parametrize("flags", [["--ray-workers", "2"], ["--ray", "auto", "--ray-workers", "0"]])
def test_ray_workers_needs_ray_and_a_positive_count(
    flags: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = _parser().parse_args(["serve", "--port", "0", *flags])
    paths = Paths.resolve(models=tmp_path, input=tmp_path, output=tmp_path)
    assert serve(args, paths) == 2
    assert "--ray-workers needs --ray" in capsys.readouterr().err
    assert not list(tmp_path.iterdir())  # nothing was started
