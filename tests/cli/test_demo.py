from dataclasses import replace

from sepgraph.cli.demo import DEMO_RECIPE, run_demo


def test_demo_trains_analyses_prunes_and_reports(tmp_path, capsys):
    report = run_demo(tmp_path / "demo", recipe=replace(DEMO_RECIPE, epochs=2, milestones=(1,)), progress=False)
    assert report == tmp_path / "demo" / "analysis" / "report.html" and report.is_file()
    for name in ("layers.csv", "pruning.csv", "recommendation.json", "figures/rings.png"):
        assert (report.parent / name).is_file()
    assert (tmp_path / "demo" / "train" / "model.pt").is_file()
    dynamics = (tmp_path / "demo" / "train" / "dynamics.csv").read_text().splitlines()
    assert dynamics[0] == "epoch,index,name,M,lu_q_mean,knn_acc" and len(dynamics) == 1 + 2 * 19  # epochs 0 and 2
    assert "During training" in report.read_text() and (report.parent / "figures" / "dynamics.png").is_file()
    out = capsys.readouterr().out
    assert [line[:3] for line in out.splitlines() if line[:1].isdigit()] == ["1/4", "2/4", "3/4", "4/4"]
    assert "Pruning" in report.read_text() and "(control)" in report.read_text()
    assert "unpruned (control): nothing removed" in out and "vs control" in out
    assert "plateau: " in out and "delta: " in out  # what differs between M and Q, or that they agree
    assert "why, under delta" in out and "layer1.0" in out
    assert (report.parent / "pruning.csv").read_text().splitlines()[1].startswith("resnet20,unpruned,control,")
