import os
import subprocess
import sys

from reproai.cli import main
from tests.conftest import spawn_reproai, tiny_config_text


def test_space_lists_parameters_with_conditions(write_config, capsys):
    path = write_config(
        tiny_config_text().replace("lr=1e-2", "lr=hp.float(1e-4, 1e-1, log=True)").replace("augment", "x")
        + "\nexperiment.training.augment = hp.choice({'none': None, 'p': hp.categorical(['flip', 'randaugment'])})\n"
    )
    assert main(["space", str(path)]) == 0
    out = capsys.readouterr().out
    assert "training.phases.warmup.lr" in out and "hp.float(low=0.0001, high=0.1, log=True" in out
    assert "training.augment.p" in out and "if training.augment == 'p'" in out


def test_space_of_a_fixed_config(write_config, capsys):
    assert main(["space", str(write_config(tiny_config_text()))]) == 0
    assert "no search space" in capsys.readouterr().out


def test_config_errors_exit_2_with_the_message(write_config, capsys):
    path = write_config(tiny_config_text())
    assert main(["run", str(path), "--set", "training.batch_size=0", "--quiet"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("reproai: error: Invalid config") and "`training.batch_size`" in err and str(path) in err


def test_progress_bars_written_to_a_file_update_every_30_seconds(write_config, monkeypatch):
    monkeypatch.delenv("TQDM_MININTERVAL", raising=False)
    assert main(["space", str(write_config(tiny_config_text()))]) == 0  # pytest's stderr is not a terminal
    assert os.environ["TQDM_MININTERVAL"] == "30"
    monkeypatch.setenv("TQDM_MININTERVAL", "5")  # the user's own setting wins
    assert main(["space", str(write_config(tiny_config_text()))]) == 0
    assert os.environ["TQDM_MININTERVAL"] == "5"


def test_a_reader_that_goes_away_ends_the_output_quietly(write_config, tmp_path):
    # `reproai space CONFIG | head -0`: the pipe is closed before reproai writes to it.
    path = write_config(tiny_config_text())
    read, write = os.pipe()
    os.close(read)
    proc = spawn_reproai(["space", str(path)], cwd=tmp_path, stdout=write, stderr=subprocess.PIPE, text=True)
    _, err = proc.communicate()
    os.close(write)
    assert proc.returncode == 141 and err == ""  # no BrokenPipeError traceback


def test_python_dash_m_and_help():
    out = subprocess.run([sys.executable, "-m", "reproai", "--help"], capture_output=True, text=True)
    assert out.returncode == 0 and "run" in out.stdout and "space" in out.stdout


def test_shipped_configs_load_and_validate():
    from reproai import load_config
    from tests.conftest import REPO, SHARED

    for path in sorted((REPO / "configs").glob("*.py")):
        if "SHARED" in path.read_text() and not SHARED.exists():
            continue  # an offline example over ../shared, absent here
        loaded = load_config(path)
        assert loaded.experiment.name
