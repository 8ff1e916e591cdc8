"""Redshift grid, survey presets, atomic writes and the command-line frame."""

import numpy as np
import pytest

from deepdip.atomic import atomic_path
from deepdip.cli import COMMANDS, main
from deepdip.errors import DeepdipError
from deepdip.surveys import available_surveys, load_survey
from deepdip.zgrid import ZGrid


def test_zgrid_centres_and_bins():
    grid = ZGrid(0.0, 0.4, 180)
    assert grid.edges.shape == (181,) and grid.centres.shape == (180,)
    assert grid.centres[0] == pytest.approx(0.4 / 360)  # centre, not the left edge
    np.testing.assert_array_equal(grid.bin_index([0.0, 0.0022, 0.39999, 0.5, -1]), [0, 0, 179, 179, 0])
    assert ZGrid.from_edges(grid.edges) == grid
    with pytest.raises(ValueError):
        ZGrid.from_edges([0, 0.1, 0.3])
    with pytest.raises(ValueError):
        ZGrid(0.4, 0.0, 10)


def test_survey_presets():
    assert {"sdss", "cfhtls-wide", "legacy"} <= set(available_surveys())
    sdss = load_survey("sdss")
    assert sdss.bands == tuple("ugriz") and sdss.pixel_scale == 0.396 and sdss.stamp_size == 64
    assert sdss.zgrid == ZGrid(0.0, 0.4, 180)
    deep = load_survey("cfhtls-wide")
    assert deep.zmax >= 1.5 and deep.nbins > 180 and deep.get("mag_limit") == 22.5
    with pytest.raises(DeepdipError, match="unknown survey 'nope'"):
        load_survey("nope")


def test_atomic_path_keeps_old_file_on_failure(tmp_path):
    target = tmp_path / "out.txt"
    target.write_text("old")
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_text("half")
            raise RuntimeError("crash")
    assert target.read_text() == "old" and sorted(p.name for p in tmp_path.iterdir()) == ["out.txt"]
    with atomic_path(target) as tmp:
        tmp.write_text("new")
    assert target.read_text() == "new" and len(list(tmp_path.iterdir())) == 1


def test_cli_help_lists_every_command(capsys):
    assert main([]) == 0
    out = capsys.readouterr().out
    assert all(name in out for name in COMMANDS)


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_every_command_has_help(command, capsys):
    with pytest.raises(SystemExit) as exc:
        main([command, "--help"])
    assert exc.value.code == 0
    assert "usage: deepdip" in capsys.readouterr().out
