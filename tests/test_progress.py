"""Progress that suits where it goes: whole lines in a file or pipe (one per stage, one a minute while a long one
runs, with the bar's figures), nothing with --quiet; tqdm's live bar only on a terminal."""

import time

import sepgraph.progress as progress
from sepgraph.cli import main
from sepgraph.progress import LineProgress, progress_bar, set_quiet


def test_a_file_gets_one_line_per_stage_with_its_figures(capsys):
    bar = progress_bar(range(3), desc="epoch 1/2", unit="batch")  # pytest's stderr is no terminal
    assert isinstance(bar, LineProgress)
    for _ in bar:
        bar.set_postfix(loss="0.500", acc="90.0%")
    with progress_bar(total=2, desc="layers", unit="point") as manual:
        manual.update()
        manual.set_postfix_str("stem M=0.1682")
        manual.update()
    lines = capsys.readouterr().err.splitlines()
    assert lines[0].startswith("epoch 1/2: 3/3 batches in ") and lines[0].endswith(" s (loss=0.500, acc=90.0%)")
    assert lines[1].startswith("layers: 2/2 points in ") and lines[1].endswith("(stem M=0.1682)")
    assert len(lines) == 2 and "\r" not in capsys.readouterr().err


def test_a_long_stage_writes_a_line_a_minute(capsys, monkeypatch):
    monkeypatch.setattr(progress, "LINE_EVERY", 0.0)
    with progress_bar(total=3, desc="features", unit="batch") as bar:
        for _ in range(3):
            time.sleep(0.001)
            bar.update()
    lines = capsys.readouterr().err.splitlines()
    assert [line.split(" in ")[0] for line in lines] == ["features: 1/3 batch", "features: 2/3 batches",
                                                        "features: 3/3 batches"]
    assert lines[0].endswith("so far") and not lines[-1].endswith("so far")


def test_quiet_shows_nothing(capsys, tmp_path):
    argv = ["analyze", "--model", "resnet20", "--data", "digits:all", "--normalize", "none", "--vertices", "100",
            "--edges", "300", "--hist-samples", "200", "--lu-batch-size", "50", "--lu-batches", "2", "--no-report"]
    try:
        assert main(["--quiet", *argv, "--out", str(tmp_path / "quiet")]) == 0
        assert capsys.readouterr().err == ""
        assert main([*argv, "--out", str(tmp_path / "lines")]) == 0
        err = capsys.readouterr().err
        assert err.startswith("features: ") and "layers: 19/19 points in " in err and len(err.splitlines()) == 2
    finally:
        set_quiet(False)
