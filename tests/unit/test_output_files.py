"""The one check of a file the user names (vaegan_dist.atomic.check_output_file), through the commands that
write one: refused in one line before any model or data is loaded (the checkpoint named here does not exist, so
an error about it would mean the output was checked too late)."""

import pytest

from vaegan_dist.atomic import check_output_file
from vaegan_dist.cli.main import main
from vaegan_dist.config import ConfigError


def test_a_named_output_needs_its_suffix_a_file_name_and_an_existing_folder(tmp_path):
    (tmp_path / "taken.png").mkdir()
    assert check_output_file(tmp_path / "grid.PNG", "--out", (".png",), "a grid is a PNG file") == tmp_path / "grid.PNG"
    with pytest.raises(ConfigError, match=r"^--out .*grid\.jpg: a grid is a PNG file; its name ends in \.png$"):
        check_output_file(tmp_path / "grid.jpg", "--out", (".png",), "a grid is a PNG file")
    with pytest.raises(IsADirectoryError, match="taken.png: is a directory; name the file to write"):
        check_output_file(tmp_path / "taken.png", "--out", (".png",), "a grid is a PNG file")
    with pytest.raises(FileNotFoundError, match=r"^--json .*r\.json: output directory does not exist \(.*nowhere\)$"):
        check_output_file(tmp_path / "nowhere" / "r.json", "--json")
    assert check_output_file(tmp_path / "results.txt", "--json") == tmp_path / "results.txt"  # any name


@pytest.mark.parametrize("command", [["sample"], ["reconstruct"], ["edit", "--attribute", "Smiling"]])
@pytest.mark.parametrize("out, message", [("grid.jpg", "a grid is a PNG file; its name ends in .png"),
                                          ("taken.png", "is a directory"),
                                          ("missing/grid.png", "output directory does not exist")])
def test_commands_that_write_a_grid_check_out_before_loading_anything(tmp_path, capsys, command, out, message):
    (tmp_path / "taken.png").mkdir()
    code = main([*command, "--checkpoint", str(tmp_path / "no-such-run"), "--out", str(tmp_path / out)])
    err = capsys.readouterr().err.strip()
    assert code == 2 and message in err and "no-such-run" not in err and len(err.splitlines()) == 1


def test_a_negative_number_reaches_numeric_options_and_text_options_as_typed():
    """`--scale -1e3` is a value, not an unknown option; and a text option keeps what was typed (`--title -1`
    was " -1" when the parser marked such tokens with a leading space)."""
    from vaegan_dist.cli.main import build_parser

    report = build_parser().parse_args(["report", "--runs", "r", "--out", "x.html", "--title", "-1e3"])
    assert report.title == "-1e3"
    edit = build_parser().parse_args(["edit", "--checkpoint", "c", "--out", "e.png", "--attribute", "Smiling",
                                      "--scale", "-1e3", "-2"])
    assert edit.scale == [-1e3, -2.0]
