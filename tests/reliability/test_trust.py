"""`reproai rerun` executes the config logged in a run: one written on another machine needs --trust."""

from mlflow import MlflowClient

from reproai.cli import main
from tests.conftest import tiny_config_text


def test_rerun_of_a_config_from_another_machine_needs_trust(write_config, capsys, tmp_path):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    marker = tmp_path / "executed.txt"
    text = tiny_config_text(name="foreign", epochs=1) + f"\nopen({str(marker)!r}, 'a').write('x')\n"
    assert main(["run", str(write_config(text)), "--tracking-uri", uri, "--quiet"]) == 0
    assert marker.read_text() == "x"
    client = MlflowClient(uri)
    exp = client.get_experiment_by_name("foreign")
    runs = client.search_runs([exp.experiment_id], max_results=100)
    study = next(r for r in runs if r.data.tags["reproai.level"] == "study")
    fit = next(r for r in runs if r.data.tags["reproai.level"] == "fit")
    # As if the study had been run, and its config written, on somebody else's machine.
    client.set_tag(study.info.run_id, "reproai.worker", "elsewhere.example.org:4242:1")
    capsys.readouterr()

    assert main(["rerun", fit.info.run_id, "--tracking-uri", uri, "--quiet"]) == 2
    out, err = capsys.readouterr()
    # where it came from, and its hash (on stderr, beside the progress bars)
    assert "written on elsewhere.example.org" in err and "sha256" in err and not out
    assert "--trust" in err and "executes it as Python code" in err
    assert marker.read_text() == "x"  # the config was not executed

    assert main(["rerun", fit.info.run_id, "--tracking-uri", uri, "--quiet", "--trust"]) == 0
    assert "reproduced exactly" in capsys.readouterr().out
    assert marker.read_text() == "xx"
