"""examples/table1.py's tables and verdicts from hand-made records: a control shared between the blocks of one
model, SPEC 20's words per row and per block, and the files regenerated from the records alone."""

import json
import sys
from dataclasses import asdict
from pathlib import Path

import pytest

from conftest import pruning_row

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "examples"))
table1 = pytest.importorskip("table1")

M, Q, RANDOM = "M (ours)", "Lu et al.'s Q", "random (size-matched)"


def record(block: str, kind: str, criterion: str, accuracy: float, seed: int = 0, saved: float = 57.0,
           matches: str = "", model: str = "resnet56", epochs: int = 6, cut: str = "remove layer1.0",
           pruned: str = "") -> dict:
    """A record as the driver writes it, its ``row`` a whole pruning.csv row; ``pruned``: the pruned model (by
    default one of its own), whose weights at this seed and epochs it reads."""
    pruned = pruned or (model if kind == "control" else f"{model}+{cut}+{criterion}+{accuracy}")
    row = pruning_row(model=model, curve=criterion, kind=kind, cut=cut, pruned_model=pruned, seed=seed,
                      finetune_epochs=epochs, accuracy_finetuned=accuracy, accuracy_proxy=accuracy - 60,
                      params_saved_pct=0.0 if kind == "control" else saved, matches=matches,
                      flops_saved_pct=0.0 if kind == "control" else 70.0,
                      weights=f"pruning/{pruned}-s{seed}-e{epochs}/model.pt")
    return {"block": block, "model": model, "kind": kind, "criterion": criterion, "matches": matches,
            "cut": cut, "pruned_model": pruned, "seed": seed, "epochs": epochs, "precision": "bf16",
            "wall_seconds": 60.0, "processor": "a processor", "threads": 2, "row": asdict(row)}


def controls(block: str = "1-resnet56-50") -> list[dict]:
    return [record(block, "control", "unpruned", value, seed) for seed, value in enumerate((89.0, 90.0, 91.0))]


def test_a_control_serves_every_block_of_its_model_and_epochs_once():
    block1, block2, block3 = table1.BLOCKS[:3]
    assert table1.control_block(block2) == block1 and table1.control_block(block3) == block3
    rows = [*controls(), record("2-resnet56-30", "criterion", M, 88.5, saved=30.5)]
    assert [r["kind"] for r in table1.block_rows(block2, rows)] == ["control"] * 3 + ["criterion"]
    assert table1.block_rows(block3, rows) == []


def test_block_verdicts_follow_spec_20():
    rows = [*controls(), *(record("1-resnet56-50", "criterion", M, 89.5, seed) for seed in range(3)),
            record("1-resnet56-50", "criterion", Q, 87.0),
            *(record("1-resnet56-50", "random", RANDOM, value, matches=M) for value in (85.0, 87.25))]
    assert table1.block_claim_e(rows) == ("holds", "M 89.50, control 90.00, s 1.000; seeds: M 3, every other cut 1")
    assert table1.flops_range(rows) == "at this parameter target every cut saves 70.00% of the FLOPs."
    lean = {**rows[-3], "criterion": "weight magnitude", "pruned_model": "lean",
            "row": {**rows[-3]["row"], "flops_saved_pct": 26.3}}
    assert table1.flops_range([*rows, lean]) == "at this parameter target the cuts save from 26.30% of the FLOPs " \
        f"(weight magnitude) to 70.00% ({M} / {Q})."  # a tie names both
    assert table1.m_against_random(rows) == "better than random"  # 89.50 against 85.00 and 87.25, s 1
    assert table1.m_against_random(rows[:3] + rows[6:]) == "no row of M yet"
    assert table1.m_against_random(rows[:6]) == "no random cut matched to it"
    own = record("1-resnet56-50", "random", RANDOM, 86.0, matches=M, pruned=rows[3]["pruned_model"])
    assert table1.m_against_random([*rows[:6], own]) == "no random cut but its own"
    assert table1.most_accurate(rows) == f"highest mean of a criterion: {M} 89.50 (3 seeds, 57.00% of the " \
        "parameters and 70.00% of the FLOPs saved); better than random"
    luck = {**rows[-1], "pruned_model": "lucky", "row": {**rows[-1]["row"], "accuracy_finetuned": 91.0}}
    assert table1.most_accurate([*rows, luck]).endswith("; a random cut (matching M (ours), 57.00% saved) reached "
                                                        "91.00, higher, but within 2 s of it")  # 1.5 points, s 1
    luckier = {**luck, "row": {**luck["row"], "accuracy_finetuned": 91.75}}
    assert table1.most_accurate([*rows, luckier]).endswith("reached 91.75, above it by more than 2 s")
    assert table1.most_saved(rows) == f"{M} saves most, 57.00% of the parameters at -0.50 points (3 seeds, block " \
        "1-resnet56-50, 2 s = 2.00)."
    same = record("1-resnet56-50", "criterion", "CKA to the last point", 89.5,
                  pruned=rows[3]["pruned_model"])  # M's own model: M's row, not a rival it would have to beat
    own = record("1-resnet56-50", "random", RANDOM, 89.5, matches=M, pruned=rows[3]["pruned_model"])
    assert table1.block_claim_e([*rows, same, own]) == ("holds", "M 89.50, control 90.00, s 1.000; seeds: M 3, "
                                                                 "every other cut 1")
    rows.append(record("1-resnet56-50", "criterion", "k-NN accuracy", 91.75))
    assert table1.block_claim_e(rows) == ("fails", "k-NN accuracy above M by more than 2 s (s 1.000); seeds: M 3, "
                                                   "every other cut 1")
    without_q = [row for row in rows if row["criterion"] != Q]
    assert table1.block_claim_e(without_q) == ("undecided", "no row of Lu et al.'s Q yet")
    same_q = [{**row, "pruned_model": rows[3]["pruned_model"]} if row["criterion"] == Q else row for row in rows]
    assert table1.block_claim_e(same_q)[1] == "M and Q cut the same units: one model, no difference to judge"
    assert table1.block_claim_e(controls()) == ("not measured yet", "3 rows")
    assert table1.block_claim_e(controls()[:1]) == ("not measured yet", "1 row")
    assert table1.block_claim_e(rows[3:])[0] == "not measured yet"  # no control


def test_the_table_and_findings_are_regenerated_from_the_records_alone(tmp_path):
    records = tmp_path / "table1"
    rows = [*controls(), record("1-resnet56-50", "criterion", M, 80.0), record("1-resnet56-50", "criterion", Q, 81.0),
            record("1-resnet56-50", "criterion", "CKA to the last point", 80.0,
                   pruned=record("1-resnet56-50", "criterion", M, 80.0)["pruned_model"]),  # M's cut: trained once
            record("2-resnet56-30", "criterion", Q, 88.75, saved=35.9),
            record("2-resnet56-30", "random", RANDOM, 86.0, matches=Q, saved=35.9)]
    for number, row in enumerate(rows):
        folder = records / row["block"]
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"{number}.json").write_text(json.dumps(row))
    table, findings = tmp_path / "TABLE1.md", tmp_path / "FINDINGS.md"
    table.write_text("# Table 1\n")
    findings.write_text("# Findings\n")
    table1.write_table(records, table)
    table1.write_findings(records, findings)
    text = table.read_text()
    assert (records / "figure.png").stat().st_size > 10_000 and "](table1/figure.png)" in text
    assert "| M (ours) | remove layer1.0 | 57.00% | 70.00% | 20.00 | 80.00 | 1 | -10.00 | below the control; 1 seed " \
        "| 1.0 |" in text
    assert "| Lu et al.'s Q | remove layer1.0 | 35.90% | 70.00% | 28.75 | 88.75 | 1 | -1.25 | equal accuracy with " \
        "the control; better than random; 1 seed | 1.0 |" in text
    assert "| CKA to the last point | remove layer1.0 | 57.00% | 70.00% | 20.00 | 80.00 | 1 | -10.00 | below the " \
        "control; 1 seed | the same model as M (ours) |" in text
    assert "(control seeds: 3, the control of block 1-resnet56-50: the same training)" in text
    assert "No row finished yet." in text  # blocks 3 and 4
    text = findings.read_text()
    assert "| 1-resnet56-50 | undecided | M 80.00 not at equal accuracy with the control 90.00, no random cut yet, " \
        "not above Lu et al.'s Q by 2 s (s 1.000); seeds: M 1, every other cut 1 | highest mean of a criterion: " \
        "Lu et al.'s Q 81.00 (1 seed, 57.00% of the parameters and 70.00% of the FLOPs saved); no random cut " \
        "matched to it; within 2 s of it: M (ours)" in text
    assert "| 4-vgg11_bn-50 | not measured yet | 0 rows |" in text
    assert "**In short**, claim (e) by SPEC 20's rules: undecided on 1-resnet56-50; not measured yet on " \
        "2-resnet56-30, 3-resnet20-30, 4-vgg11_bn-50. M's cut against the random cuts of its size: no random cut " \
        "matched to it on 1-resnet56-50; no row of M yet on 2-resnet56-30, 3-resnet20-30, 4-vgg11_bn-50." in text
    assert "- resnet56, at equal accuracy with the control or above: Lu et al.'s Q saves most, 35.90% of the " \
        "parameters at -1.25 points (1 seed, block 2-resnet56-30, 2 s = 2.00)." in text
    assert "- resnet20, at equal accuracy with the control or above: not judged yet (control seeds: 0; SPEC 20 " \
        "needs 3)." in text


def test_a_block_lists_m_first_and_charges_each_training_once():
    block = "3-resnet20-30"

    def line(kind, criterion, accuracy, pruned, seconds, matches="", seed=0, epochs=10):
        made = record(block, kind, criterion, accuracy, seed, matches=matches, model="resnet20", epochs=epochs,
                      pruned=pruned)
        return {**made, "wall_seconds": seconds}

    rows = [*(line("control", "unpruned", value, "resnet20", 600.0, seed=seed)
              for seed, value in enumerate((88.5, 88.6, 88.7))),
            line("criterion", Q, 82.0, "q-cut", 1.0),  # read back: a random cut drawn with Q's units trained it
            line("random", RANDOM, 82.0, "q-cut", 240.0, matches=Q), line("random", RANDOM, 80.0, "other", 300.0, Q),
            line("criterion", M, 79.0, "m-cut", 180.0), line("random", RANDOM, 79.0, "m-cut", 0.5, matches=M),
            line("criterion", "weight magnitude", 77.0, "w-cut", 300.0) | {"row": {  # resumed: 600 s in all
                **line("criterion", "weight magnitude", 77.0, "w-cut", 300.0)["row"], "train_seconds": 600.0}},
            line("random", RANDOM, 77.0, "w-cut", 0.5, matches="weight magnitude")]
    check = [line("criterion", M, 70.0, "m-cut", 60.0, epochs=3),
             line("random", RANDOM, 65.0, "other", 30.0, matches=M, epochs=3)]
    section = table1.block_section(table1.BLOCKS[2], rows + check)
    lines = [text for text in section if text.startswith("| ")][1:]
    assert [text.split(" | ")[0] for text in lines] == [
        "| unpruned", "| M (ours)", "| random, matching M (ours)", "| Lu et al.'s Q",
        "| random, matching Lu et al.'s Q", "| weight magnitude", "| random, matching weight magnitude"]
    assert [text.split(" | ")[-1] for text in lines] == [
        "30.0 |", "3.0 |", "the same model as M (ours) |", "4.0 |", "5.0 |", "10.0 |",
        "the same model as weight magnitude |"]  # every training once: 52 minutes in all
    assert "| no other cut of its size classes (the one drawn is its own) | 57.00% | 70.00% | - | - | 1 each | - |" \
        in lines[-1]
    assert "| 1 cut of its size classes; its own cut, drawn too, left out | 57.00% | 70.00% | - | 80.00 [80.00, " \
        "80.00] | 1 each | -8.60 |" in lines[4]  # the mean of the other cuts alone
    assert "Budget check at 3 epochs (seed 0 each): M (ours) 70.00%; a random cut matching M (ours) 65.00% " \
        "(1.5 min in all)." in section
    rows.append(line("criterion", "k-NN accuracy", 82.0, "q-cut", 0.5))  # Q's units again: one cut, named twice
    rows += [line("random", RANDOM, accuracy, pruned, 0.5, matches="k-NN accuracy")
             for accuracy, pruned in ((82.0, "q-cut"), (80.0, "other"))]  # Q's random draws again: not shown twice
    shown = [text.split(" | ")[0] for text in table1.block_section(table1.BLOCKS[2], rows) if text.startswith("| ")]
    assert shown[-3:] == ["| k-NN accuracy", "| weight magnitude", "| random, matching weight magnitude"]
    assert table1.block_claim_e(rows) == ("fails", f"{Q} / k-NN accuracy above M by more than 2 s (s 0.100); "
                                                   "seeds: M 1, every other cut 1")
    assert table1.most_accurate(rows).startswith(f"highest mean of a criterion: {Q} / k-NN accuracy 82.00 (1 seed,")


def test_the_figure_has_a_marker_per_criterion_and_target_and_one_legend_entry_each():
    rows = [*controls(), record("1-resnet56-50", "criterion", M, 80.0, saved=57.0),
            record("2-resnet56-30", "criterion", M, 86.0, saved=30.5),
            record("2-resnet56-30", "criterion", Q, 87.0, saved=35.9),
            record("2-resnet56-30", "random", RANDOM, 85.0, matches=M, saved=30.5),
            record("3-resnet20-30", "criterion", M, 70.0, saved=46.4, model="resnet20", epochs=10),
            record("3-resnet20-30", "criterion", M, 60.0, saved=46.4, model="resnet20", epochs=3)]
    figure = table1.accuracy_figure(rows)
    resnet56, resnet20 = figure.axes
    assert sorted(bar.lines[0].get_xydata()[0].tolist() for bar in resnet56.containers) == \
        [[30.5, 86.0], [35.9, 87.0], [57.0, 80.0]]
    labels = [text.get_text() for text in resnet56.get_legend().get_texts()]
    assert labels == ["unpruned control (3 seeds)", "random cuts of the same size (band: lowest to highest)", M, Q]
    assert [bar.lines[0].get_xydata()[0].tolist() for bar in resnet20.containers] == [[46.4, 70.0]]  # 10 epochs


def test_the_estimate_counts_each_trained_model_once(tmp_path, monkeypatch):
    class Plan:
        def flops_share(self, candidate):
            return 0.5

    monkeypatch.setattr(table1, "processor", lambda: type("P", (), {"describe": lambda self: "a processor"})())
    folder = tmp_path / "1-resnet56-50"
    folder.mkdir()
    first = {**record("1-resnet56-50", "criterion", M, 80.0), "wall_seconds": 7 * 100.0 * 0.3}  # 100 s per epoch
    again = {**first, "criterion": "CKA to the last point", "wall_seconds": 2.0}  # read back: seconds
    for number, row in enumerate((first, again)):
        (folder / f"{number}.json").write_text(json.dumps(row))
    row = table1.PlannedRow(table1.BLOCKS[0], candidate=None, seed=0, epochs=6)
    assert table1._estimate(row, Plan(), tmp_path) == pytest.approx(7 * 100.0 * 0.5 * 1.1 + 10.0)
    resumed = {**first, "wall_seconds": 7 * 100.0 * 0.3 / 2, "row": {**first["row"], "train_seconds": 7 * 100.0 * 0.3}}
    (folder / "0.json").write_text(json.dumps(resumed))  # its last run did half: its training's total counts
    assert table1._estimate(row, Plan(), tmp_path) == pytest.approx(7 * 100.0 * 0.5 * 1.1 + 10.0)


def candidate(kind: str, curve: str, units: tuple[str, ...], matches: str = "", model: str = "resnet20"):
    """A candidate of a block's comparison: a cut removing ``units`` (none: the control)."""
    from sepgraph.models.pruned import PruningSpec
    from sepgraph.pruning.candidates import Candidate

    spec = PruningSpec(model, "remove", units) if units else PruningSpec(model)
    return Candidate(curve, kind, "target-params", 30.0, "cut", spec, len(units), len(units), matches)


def test_the_budget_check_ranks_m_against_a_random_cut_that_is_not_its_own():
    own, other = ("layer1.0", "layer3.1"), ("layer1.1", "layer3.2")
    found = [candidate("control", "unpruned", ()), candidate("criterion", M, own),
             candidate("criterion", Q, ("layer2.0", "layer3.2")), candidate("random", RANDOM, own, M),
             candidate("random", RANDOM, other, M)]
    block3 = table1.BLOCKS[2]
    rows = table1.planned_rows(block3, found)
    check = [(row.candidate.kind, row.candidate.spec.targets) for row in rows if row.epochs == block3.budget_epochs]
    assert check == [("criterion", own), ("criterion", ("layer2.0", "layer3.2")), ("random", other)]
    assert [row.seed for row in rows if row.candidate.kind == "control"] == [0, 1, 2]


def test_the_proxy_rank_shows_the_ranges_it_ranks():
    rows = [*controls(), *(record("1-resnet56-50", "criterion", name, value, cut=name)
                           for name, value in ((M, 80.0), (Q, 81.5), ("k-NN accuracy", 81.0)))]
    assert table1.proxy_rank(rows) == "+1.00 (3 cuts; proxies 20.00-21.50%, fine-tuned 80.00-81.50%)"
    assert table1.proxy_rank(rows[:4]) == "- (1 cut)"  # too few cuts to rank


def test_the_records_alone_say_how_much_of_each_plan_is_done(tmp_path):
    block = table1.BLOCKS[3]
    control, cut = (table1.PlannedRow(block, candidate(kind, curve, units, model="vgg11_bn"), 0, block.epochs)
                    for kind, curve, units in (("control", "unpruned", ()), ("criterion", M, ("conv7", "conv8"))))
    assert control.record_path.startswith("4-vgg11_bn-50/control-")  # vgg11_bn's control is its own block's
    shared = table1.PlannedRow(table1.BLOCKS[1], candidate("control", "unpruned", (), model="resnet56"), 0, 6)
    assert shared.record_path.startswith("1-resnet56-50/control-")  # block 2's is block 1's training
    table1.write_plan(tmp_path, block, [control, cut])
    assert table1.plan_progress(tmp_path, table1.BLOCKS[0]) is None  # no plan written: nothing to count
    (tmp_path / control.record_path).write_text(json.dumps(record(block.name, "control", "unpruned", 85.0,
                                                                         model="vgg11_bn", epochs=10)))
    assert table1.plan_progress(tmp_path, block) == (1, 2)
    assert [r["kind"] for r in table1.load_records(tmp_path)] == ["control"]  # the plan is no record
    assert not table1._mixes_precision(tmp_path / block.name, "bf16")  # nor has it a precision
    assert table1._mixes_precision(tmp_path / block.name, "fp32")
    assert "1 of 2 planned rows are recorded so far." in table1.block_section(block, table1.load_records(tmp_path),
                                                                              (1, 2))
    (tmp_path / cut.record_path).write_text(json.dumps(record(block.name, "criterion", M, 85.5, model="vgg11_bn",
                                                                     epochs=10)))
    assert table1.plan_progress(tmp_path, block) == (2, 2) and not table1.plan_complete(tmp_path)  # 3 blocks unplanned
    for other in table1.BLOCKS[:3]:
        table1.write_plan(tmp_path, other, [])
    assert table1.plan_complete(tmp_path)
    findings, table = tmp_path / "FINDINGS.md", tmp_path / "TABLE1.md"
    findings.write_text("# Findings\n")
    table.write_text("# Table 1\n")
    table1.write_findings(tmp_path, findings)
    table1.write_table(tmp_path, table)
    assert "**Every planned row** (" in findings.read_text()
    text = table.read_text()
    assert "**Every planned row** (each block's plan, `docs/table1/BLOCK/plan.json`, is recorded in full; " in text
    assert "All 2 planned rows are recorded." in text and "so far" not in text
    assert table1.accuracy_figure(table1.load_records(tmp_path), complete=True).get_suptitle().startswith(
        "Table 1: CIFAR-10 test")  # not "rows so far"


def test_a_shortened_cut_is_given_in_full_below_its_table_once():
    long = "remove " + ", ".join(f"layer1.{unit}" for unit in range(9))  # 88 characters: shortened to 70
    rows = [*controls(), record("1-resnet56-50", "criterion", M, 80.0, cut=long),
            record("1-resnet56-50", "criterion", "CKA to the last point", 80.0, cut=long,
                   pruned=record("1-resnet56-50", "criterion", M, 80.0, cut=long)["pruned_model"]),
            record("1-resnet56-50", "criterion", Q, 81.0)]
    section = table1.block_section(table1.BLOCKS[0], rows)
    assert f"| {M} | {long[:67]}... |" in "\n".join(section)
    assert section[-4:] == ["The shortened cuts in full:", "", f"- {M} / CKA to the last point: {long}", ""]


def test_a_training_is_counted_once_per_weights_file():
    first = record("3-resnet20-30", "criterion", M, 79.0, model="resnet20", epochs=10)
    again = {**record("3-resnet20-30", "random", RANDOM, 79.0, matches=M, model="resnet20", epochs=10,
                      pruned=first["pruned_model"]), "wall_seconds": 120.0}  # the same cut, the same file: read back
    other = {**again, "row": {**again["row"], "weights": "pruning/trained-again/model.pt"}}  # trained once more
    assert len(table1._trainings([first, again])) == 1
    assert sorted(r["wall_seconds"] for r in table1._trainings([first, other]).values()) == [60.0, 120.0]


def test_a_cut_chosen_by_several_criteria_meets_the_random_cuts_drawn_for_any_of_them():
    rows = [*controls(), record("1-resnet56-50", "criterion", Q, 85.0),
            record("1-resnet56-50", "criterion", "k-NN accuracy", 85.0,
                   pruned=record("1-resnet56-50", "criterion", Q, 85.0)["pruned_model"]),
            *(record("1-resnet56-50", "random", RANDOM, value, matches="k-NN accuracy") for value in (80.0, 81.0))]
    assert table1.most_accurate(rows).endswith("; better than random")  # drawn for k-NN, the same cut as Q's
    unmeasured = [r for r in rows if r["kind"] != "control"] + controls()[:1]
    assert "; against random: no noise level yet" in table1.most_accurate(unmeasured)
    lucky = [*unmeasured, record("1-resnet56-50", "random", RANDOM, 86.0, matches=M)]
    assert table1.most_accurate(lucky).endswith("reached 86.00, higher")  # no s: no rule to judge it by
