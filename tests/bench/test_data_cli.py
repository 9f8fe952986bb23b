"""``bench-data`` (bench/data.py): one-line errors, list / generate / info at a tiny budget."""
from __future__ import annotations

import pytest

pytest.importorskip("h5py")
pytest.importorskip("gymnasium_robotics")

from bench.data import main  # noqa: E402


def test_unknown_id_is_one_line_listing_valid_ids(capsys, tmp_path):
    assert main(["generate", "maze2d-umaze-v1", "--data-dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "unknown dataset id 'maze2d-umaze-v1'" in err
    assert "maze2d-umaze-gen" in err and "pendulum-medium-replay-gen" in err and "Traceback" not in err
    assert main(["info", "nope", "--data-dir", str(tmp_path)]) == 2
    assert capsys.readouterr().err.count("\n") == 1
    assert not any(tmp_path.iterdir())


def test_bad_settings_are_one_line(capsys, tmp_path):
    for argv, word in ((["--steps", "0"], "steps"), (["--sac-steps", "10"], "sac_steps"),
                       (["--set", "kp"], "KEY=VALUE"), (["--set", "kp=abc"], "kp"), (["--seed", "-2"], "--seed")):
        assert main(["generate", "maze2d-umaze-gen", "--data-dir", str(tmp_path), *argv]) == 2, argv
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and word in err, (argv, err)
    assert not any(tmp_path.iterdir())


def test_generate_list_info(capsys, tmp_path):
    d = ["--data-dir", str(tmp_path)]
    assert main(["generate", "maze2d-umaze-gen", *d, "--steps", "600", "--set", "ref_episodes=10", "--seed", "3"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("maze2d-umaze-gen: generated, 600 rows") and " s -> " in out
    assert (tmp_path / "maze2d-umaze-gen.hdf5").is_file()
    # second call: reused, not regenerated
    assert main(["generate", "maze2d-umaze-gen", *d, "--steps", "600", "--set", "ref_episodes=10", "--seed", "3"]) == 0
    assert "up to date" in capsys.readouterr().out
    assert main(["list", *d]) == 0
    lines = capsys.readouterr().out.splitlines()
    row = next(x for x in lines if x.startswith("maze2d-umaze-gen "))
    assert "yes, 600 rows" in row and "seed 3" in row
    assert next(x for x in lines if x.startswith("pendulum-medium-gen ")).split()[1] == "-"
    assert main(["info", "maze2d-umaze-gen", *d]) == 0
    info = capsys.readouterr().out
    assert "env_id: PointMaze_UMaze-v3" in info and "obs_key: observation" in info and "seed: 3" in info
    assert main(["info", "pendulum-medium-gen", *d]) == 1
    assert "bench-data generate pendulum-medium-gen" in capsys.readouterr().err
