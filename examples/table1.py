"""The Table 1 run: claim (e) fine-tuned at equal size against random cuts on the shared resnet56, resnet20 and
vgg11_bn (SPEC 19-22), a few rows at a time, into docs/table1/ and docs/TABLE1.md.

Usage (from the repository root; start it in the background, from a git worktree of main)::

    .venv/bin/python examples/table1.py --data-dir ../shared/data --out results/proxy --budget-minutes 110

The plan (:data:`BLOCKS`) lists every row in the order the verdict needs them. A row whose record exists in
``--records`` is skipped; a row is started only when its estimated minutes fit in what is left of the budget (the
estimate scales the model's measured seconds per epoch by the row's share of FLOPs). Each finished row's record
(JSON: block, criterion, cut, sizes reached, seed, epochs, precision, accuracies on the report half, proxy, seconds,
processor) is written at once; the section of ``--table`` and its figure are regenerated from the records alone
after every row (``--table-only``: nothing trained). Each model's analysis of the selection half is made (or read
back) in ``--out/MODEL``, the folder ``prune --proxy-only`` used for the proxy table, so the cuts are the proxy
table's. The images are a lossy JPEG export of CIFAR-10 (quality 75): results are stated as such.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import statistics
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from common import replace_section
from matplotlib.figure import Figure

from sepgraph import GraphSettings, PruningOptions, PruningPlan, Recipe, analyse_selection, load_dataset, plan_pruning
from sepgraph.devices import processor, resolve_device
from sepgraph.files import atomic_text, atomic_write
from sepgraph.pruning.candidates import Candidate
from sepgraph.pruning.criterion import CRITERIA, criterion_rank
from sepgraph.pruning.table import PruningRow, verdicts
from sepgraph.pruning.verdict import against_random, at_equal_accuracy, claim_e, noise_level
from sepgraph.report.figures import pruning_tradeoff
from sepgraph.results.folder import is_complete
from sepgraph.training.precision import native_bf16

MODELS = {"resnet20": ("resnet20-12fca82f.th", "imagenet"), "resnet56": ("resnet56-4bfd9763.th", "imagenet"),
          "vgg11_bn": ("vgg11_bn-cifar10jpeg-15ep-f98bf862.pt", "cifar10")}
"""Each shared model's weights file and the normalisation it was trained with (``../shared/data/README``)."""
SECONDS_PER_EPOCH = {"resnet20": 55.0, "resnet56": 150.0, "vgg11_bn": 140.0}
"""First estimates of one unpruned training epoch (bf16, 50,000 images) on a 2-core AMD EPYC Zen 4, before a
record of this machine says better (issue 35's figures, scaled to that processor)."""
SEEDS = 3
PLAN = "plan.json"
"""The file in each block's records folder that lists the records of its whole plan (written by the driver)."""
HEADING = "## Fine-tuned at equal size against random cuts (SPEC 19-22)"
FINDINGS_HEADING = "## Claim (e) at equal size: the Table 1 run"
PUBLISHED = ("The paper: M saves 60.76% of resnet56's parameters at -0.01 points; Lu et al. 41.24% at +0.03; RedTest's "
             "CKA cut 45.1% at -0.02; SR-init 63.98% at -0.56; all after 150-epoch retraining on lossless CIFAR-10. "
             "Here: the JPEG export (before any cut the shared resnet56 and resnet20 score 10.2 and 10.7 points below "
             "their published accuracies on it), 6-10 epochs of "
             "fine-tuning, bf16 where the processor has it natively, and accuracies on the report half only.")


@dataclass(frozen=True)
class Block:
    """One block of the plan: a model at one target, its epochs, and which criteria get :data:`SEEDS` seeds."""

    name: str
    model: str
    target: float
    epochs: int
    seeded: tuple[str, ...]
    single: tuple[str, ...]
    random_for: tuple[str, ...]
    budget_epochs: int | None = None
    budget_rows: tuple[str, ...] = ()


BLOCKS = (
    Block("1-resnet56-50", "resnet56", 50, 6, ("M", "lu_q"), ("ablation", "magnitude"), ("M", "lu_q")),
    Block("2-resnet56-30", "resnet56", 30, 6, (), ("M", "lu_q", "knn_acc", "probe_acc", "cka_last", "ablation",
                                                  "magnitude", "block_influence", "angular"), ("M", "lu_q")),
    Block("3-resnet20-30", "resnet20", 30, 10, ("M",), ("lu_q", "knn_acc", "probe_acc", "cka_last", "ablation",
                                                       "magnitude", "block_influence", "angular"),
          ("M", "lu_q", "knn_acc", "probe_acc", "cka_last", "ablation", "magnitude", "block_influence", "angular"),
          budget_epochs=3, budget_rows=("M", "lu_q", "random")),
    Block("4-vgg11_bn-50", "vgg11_bn", 50, 10, (), ("M", "lu_q", "ablation"), ("M", "lu_q", "ablation")),
)
"""The plan, in the order of issue 35: each block gives a verdict by itself; the control always gets SEEDS seeds.
Block 4 adds per-unit ablation to the issue's M and Q: on vgg11_bn every other criterion cuts M's units, whose size
classes allow no other random cut, while ablation's cut is as large in parameters and has a random cut of its own."""


@dataclass(frozen=True)
class PlannedRow:
    """One row to train: a candidate of the block's comparison at one seed (and, for the budget check, epochs)."""

    block: Block
    candidate: Candidate
    seed: int
    epochs: int

    @property
    def record_name(self) -> str:
        """A file name that names the row: its kind, criterion, what it matches, its pruning, seed and epochs."""
        what = json.dumps([self.candidate.kind, self.candidate.curve, self.candidate.matches,
                           str(self.candidate.spec), self.seed, self.epochs])
        slug = "".join(c if c.isalnum() else "-" for c in f"{self.candidate.kind}-{self.candidate.curve}")[:40]
        return f"{slug}-s{self.seed}-e{self.epochs}-{hashlib.sha256(what.encode()).hexdigest()[:10]}.json"

    @property
    def record_path(self) -> str:
        """Where the row's record goes under the records folder: the control's under the block that owns it."""
        owner = control_block(self.block) if self.candidate.kind == "control" else self.block
        return f"{owner.name}/{self.record_name}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default="../shared/data", help="the shared data folder")
    parser.add_argument("--out", default="results/proxy", help="one results folder per model (its analysis)")
    parser.add_argument("--records", default="docs/table1", help="where each finished row's record goes (tracked)")
    parser.add_argument("--table", default="docs/TABLE1.md")
    parser.add_argument("--findings", default="docs/FINDINGS.md", help="where claim (e)'s verdict section goes")
    parser.add_argument("--budget-minutes", type=float, default=110.0,
                        help="start no row that cannot finish within this many minutes of the start")
    parser.add_argument("--blocks", nargs="+", default=[block.name for block in BLOCKS],
                        choices=[block.name for block in BLOCKS])
    parser.add_argument("--device", default="auto")
    parser.add_argument("--table-only", action="store_true", help="regenerate the table and figure, train nothing")
    args = parser.parse_args()
    records = Path(args.records)
    if not args.table_only:
        run_plan(args, records, time.monotonic() + 60 * args.budget_minutes)
    write_table(records, Path(args.table))
    write_findings(records, Path(args.findings))


def run_plan(args: argparse.Namespace, records: Path, deadline: float) -> None:
    """Train the plan's missing rows in order while the budget allows, writing each record and the table at once."""
    device = resolve_device(args.device)
    precision = "bf16" if native_bf16(device) else "fp32"
    data_dir = Path(args.data_dir)
    test = load_dataset(f"npz:{data_dir}/cifar10-jpeg/cifar10_test.npz")
    train = load_dataset(f"npz:{data_dir}/cifar10-jpeg/cifar10_train.npz")
    for block in (block for block in BLOCKS if block.name in args.blocks):
        folder = Path(args.out) / block.model
        if any(_mixes_precision(records / name, precision) for name in {block.name, control_block(block).name}):
            print(f"{block.name}: its rows or its control so far are in another precision than {precision}; "
                  "skipped", flush=True)
            continue
        weights, normalize = MODELS[block.model]
        if not is_complete(folder) or not (folder / "depth.csv").is_file():
            print(f"{block.name}: analysing the selection half into {folder}", flush=True)
            analyse_selection(block.model, test, GraphSettings(seed=0), out=folder, weights=data_dir / "weights" /
                              weights, normalize=normalize, progress=False)
        plan = plan_pruning(folder, train, _options(block), recipe=_recipe(block.epochs, 0, precision),
                            device=args.device, progress=False)
        rows = planned_rows(block, plan.candidates)
        write_plan(records, block, rows)
        for row in rows:
            path = records / row.record_path
            if path.is_file():
                continue
            recipe = _recipe(row.epochs, row.seed, precision)
            read_back = plan.is_trained(row.candidate, recipe)  # another criterion's row trained the same units
            estimate = 0.0 if read_back else _estimate(row, plan, records)
            left = deadline - time.monotonic()
            if estimate > left:
                print(f"{block.name}: {row.candidate.curve} seed {row.seed} needs about {estimate / 60:.0f} min, "
                      f"{left / 60:.0f} left; not started", flush=True)
                continue
            print(f"{block.name}: {'reading back' if read_back else 'training'} {row.candidate.curve} seed "
                  f"{row.seed}" + ("" if read_back else f", about {estimate / 60:.0f} min ({left / 60:.0f} left)"),
                  flush=True)
            started = time.monotonic()
            trained = plan.row(row.candidate, recipe)
            record = {"block": path.parent.name, "model": block.model, "target_params": block.target,
                      "criterion": row.candidate.curve, "kind": row.candidate.kind, "matches": row.candidate.matches,
                      "cut": row.candidate.cut, "pruned_model": str(row.candidate.spec), "seed": row.seed,
                      "epochs": row.epochs, "head_epochs": 1, "precision": precision,
                      "wall_seconds": time.monotonic() - started, "processor": processor().describe(),
                      "threads": torch.get_num_threads(), "data": "CIFAR-10 (JPEG q75 export), report half",
                      "row": asdict(trained)}
            path.parent.mkdir(parents=True, exist_ok=True)
            atomic_text(path, json.dumps(record, indent=1) + "\n")
            print(f"{block.name}: {row.candidate.curve} ({row.candidate.cut[:60]}) seed {row.seed}: "
                  f"{trained.accuracy_finetuned:.2f}% after {record['wall_seconds'] / 60:.1f} min", flush=True)
            write_table(records, Path(args.table))
            write_findings(records, Path(args.findings))


def _options(block: Block) -> PruningOptions:
    curves = tuple(dict.fromkeys((*block.seeded, *block.single))) + ("random",)
    return PruningOptions(curves=curves, target_params=(block.target,), random_seeds=3, head_epochs=1)


def _recipe(epochs: int, seed: int, precision: str) -> Recipe:
    """The paper's recipe (SPEC 10) with a short cosine schedule: every row of a block alike."""
    return Recipe(epochs=epochs, schedule="cosine", seed=seed, precision=precision)


def planned_rows(block: Block, candidates: list[Candidate]) -> list[PlannedRow]:
    """The block's rows in the order the verdict needs them: the control, the first two seeded criteria (else the
    first two single ones) and the random cuts matching the first at the first seed; the control's and the seeded
    criteria's other seeds; the random cuts matching the others; the remaining criteria; the budget check last (its
    random cut the first matched to M that is not M's own cut)."""
    label = {CRITERIA[key].label: key for key in CRITERIA}
    control = next(c for c in candidates if c.kind == "control")
    criteria = [c for c in candidates if c.kind == "criterion"]
    randoms = [c for c in candidates if c.kind == "random"]

    def of(keys: tuple[str, ...]) -> list[Candidate]:
        return [c for c in criteria if label.get(c.curve) in keys]

    def matching(keys: tuple[str, ...]) -> list[Candidate]:
        return [c for c in randoms if label.get(c.matches) in keys]

    first, rest = block.seeded[:2] or block.single[:2], [key for key in block.random_for]
    order = [(control, 0), *((c, 0) for c in of(first)), *((c, 0) for c in matching(first[:1]))]
    order += [(control, seed) for seed in range(1, SEEDS)]
    order += [(c, seed) for seed in range(1, SEEDS) for c in of(block.seeded)]
    order += [(c, 0) for c in matching(tuple(rest))] + [(c, 0) for c in of(block.single)]
    rows = [PlannedRow(block, candidate, seed, block.epochs) for candidate, seed in dict.fromkeys(order)]
    if block.budget_epochs:
        own = {str(c.spec) for c in of(("M",))}  # a random cut that drew M's own units ranks nothing against it
        check = of(tuple(key for key in block.budget_rows if key != "random")) + \
            [c for c in matching(("M",)) if str(c.spec) not in own][:1]
        rows += [PlannedRow(block, candidate, 0, block.budget_epochs) for candidate in check]
    return rows


def _mixes_precision(folder: Path, precision: str) -> bool:
    """Whether a block's rows so far were trained in another precision (a block never mixes them)."""
    return any(record["precision"] != precision for record in load_records(folder, pattern="*.json"))


def _estimate(row: PlannedRow, plan: PruningPlan, records: Path) -> float:
    """Seconds the row should take: (head + fine-tuning epochs) x the model's seconds per epoch x the pruned
    model's share of FLOPs, plus three passes over the report half and the proxy; the seconds per epoch are the
    median of what the records of this model on this processor imply (a row slowed by other work moves it little),
    else :data:`SECONDS_PER_EPOCH`."""
    share = plan.flops_share(row.candidate)
    mine = [record for record in load_records(records)
            if record["model"] == row.block.model and record["processor"] == processor().describe()]
    implied = [_seconds(record) / ((record["epochs"] + 1) * max(1 - record["row"]["flops_saved_pct"] / 100, 0.05))
               for record in _trainings(mine).values()]
    per_epoch = statistics.median(implied) if implied else SECONDS_PER_EPOCH[row.block.model]
    return (row.epochs + 1) * per_epoch * share * 1.1 + 0.1 * per_epoch


def _trainings(rows: list[dict]) -> dict[tuple, dict]:
    """Each training once, by :func:`_training`: the record that trained it, the one with the most :func:`_seconds`
    (a record that read it back holds only the training's own seconds, not the evaluation around it)."""
    trained: dict[tuple, dict] = {}
    for record in rows:
        key = _training(record)
        if key not in trained or _seconds(record) > _seconds(trained[key]):
            trained[key] = record
    return trained


def _seconds(record: dict) -> float:
    """The seconds a record's training took: its wall time, or, where the row resumed an interrupted training, the
    training's own total (``train_seconds`` counts every run of it; the wall time only the last)."""
    return max(record["wall_seconds"], record["row"]["train_seconds"])


def _training(record: dict) -> tuple[str, str]:
    """The training a record's accuracy comes from: its model and the weights file it wrote or read back (a row
    read back names the file another row trained; a cut trained again under changed settings, by another version
    of the driver, has two)."""
    return record["model"], record["row"]["weights"]


def load_records(records: Path, pattern: str = "*/*.json") -> list[dict]:
    """The rows' records under ``records`` (every block's folder; ``pattern="*.json"``: one block's), plans left out."""
    return [json.loads(path.read_text()) for path in sorted(records.glob(pattern)) if path.name != PLAN]


def write_plan(records: Path, block: Block, rows: list[PlannedRow]) -> None:
    """Record the block's whole plan (each row's record path), so that the records alone say what is left."""
    path = records / block.name / PLAN
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_text(path, json.dumps({"block": block.name, "rows": [row.record_path for row in rows]}, indent=1) + "\n")


def plan_progress(records: Path, block: Block) -> tuple[int, int] | None:
    """How many of the block's planned rows have a record, of how many; None before the driver wrote its plan."""
    path = records / block.name / PLAN
    if not path.is_file():
        return None
    planned = json.loads(path.read_text())["rows"]
    return sum((records / name).is_file() for name in planned), len(planned)


def plan_complete(records: Path) -> bool:
    """Whether every block's plan is written and every row of it recorded."""
    return all((progress := plan_progress(records, block)) and progress[0] == progress[1] for block in BLOCKS)


def control_block(block: Block) -> Block:
    """The block whose control this block's is: the first of the plan with the same model and epochs (the control
    is the same training whatever the target, so it is trained and recorded once)."""
    return next(other for other in BLOCKS if (other.model, other.epochs) == (block.model, block.epochs))


def block_rows(block: Block, rows: list[dict]) -> list[dict]:
    """A block's records: its own, and the control's where another block holds it (:func:`control_block`)."""
    shared = control_block(block).name
    return [record for record in rows if record["block"] == block.name or
            (record["block"] == shared != block.name and record["kind"] == "control")]


def write_table(records: Path, table: Path) -> None:
    """The section of ``table`` under :data:`HEADING` and ``records/figure.png``, from the records alone."""
    rows, complete = load_records(records), plan_complete(records)
    lines = [HEADING, "", _intro(rows, complete), ""]
    for block in BLOCKS:
        lines += block_section(block, block_rows(block, rows), plan_progress(records, block))
    if any(record["epochs"] == block.epochs for block in BLOCKS for record in rows if record["block"] == block.name):
        figure = accuracy_figure(rows, complete)
        buffer_path = records / "figure.png"
        atomic_write(buffer_path, lambda handle: figure.savefig(handle, format="png", dpi=110))
        lines += [f"![accuracy against parameters saved]({buffer_path.relative_to(table.parent)})", ""]
    replace_section(table, HEADING, lines, first=True)


def write_findings(records: Path, findings: Path) -> None:
    """The section of ``findings`` under :data:`FINDINGS_HEADING`, from the records alone: per block, claim (e) by
    SPEC 20's rules, the criterion that keeps most accuracy at that size against its random cuts, and how well the
    zero-training proxy ranked the fine-tuned rows (Spearman); per model, the row at equal accuracy with the
    control that saves most."""
    rows = load_records(records)
    lines = [FINDINGS_HEADING, "", f"**{_state(plan_complete(records))}** (`examples/table1.py`, records in "
             "`docs/table1/`, the table in `docs/TABLE1.md`). " + PUBLISHED, "",
             "| block | claim (e) (SPEC 20) | why | most accuracy at this size | proxy vs fine-tuned (Spearman over "
             "the distinct cuts, seed 0) |", "|---|---|---|---|---|"]
    mains = {block.name: [record for record in block_rows(block, rows) if record["epochs"] == block.epochs]
             for block in BLOCKS}
    for block in BLOCKS:
        verdict, why = block_claim_e(mains[block.name])
        lines.append(f"| {block.name} | {verdict} | {why} | {most_accurate(mains[block.name])} | "
                     f"{proxy_rank(mains[block.name])} |")
    lines += ["", in_short(mains), ""]
    for block in BLOCKS:
        lines += [f"- {block.name}: {text}" for text in (flops_range(mains[block.name]),
                                                          seed_spread(mains[block.name])) if text]
    for model in dict.fromkeys(block.model for block in BLOCKS):
        mine = list({id(record): record for block in BLOCKS if block.model == model  # a shared control once
                     for record in mains[block.name]}.values())
        lines.append(f"- {model}, at equal accuracy with the control or above: {most_saved(mine)}")
    replace_section(findings, FINDINGS_HEADING, lines)


def flops_range(rows: list[dict]) -> str:
    """How far apart the criteria's cuts at one parameter target are in FLOPs saved: the same size in parameters
    can be a very different model to run."""
    saved = {name: group[0]["row"]["flops_saved_pct"] for name, group in _cuts(rows).items()}
    if len(saved) < 2:
        return ""
    low, high = min(saved.values()), max(saved.values())
    if low == high:
        return f"at this parameter target every cut saves {low:.2f}% of the FLOPs."

    def at(value: float) -> str:
        return " / ".join(name for name, share in saved.items() if share == value)

    return (f"at this parameter target the cuts save from {low:.2f}% of the FLOPs ({at(low)}) to {high:.2f}% "
            f"({at(high)}).")


def seed_spread(rows: list[dict]) -> str:
    """s (the control's seeds alone, SPEC 20) beside the spread of every criterion with as many seeds: where the
    cuts' own seeds spread more, a single-seed difference of 2 s is weaker evidence than it reads."""
    noise = noise_level(_accuracies(rows, "control"))
    seeded = {label: statistics.stdev(_finetuned(group)) for label, group in _criteria(rows).items()
              if noise is not None and len(group) >= SEEDS}
    if not seeded:
        return ""
    return (f"s {noise:.3f} from the control's seeds; the cuts' own seeds: " +
            ", ".join(f"{label} sd {value:.3f}" for label, value in seeded.items()) +
            " (a single-seed difference of 2 s is weaker evidence where a cut's seeds spread more than s).")


def _criteria(rows: list[dict]) -> dict[str, list[dict]]:
    """The criteria's records by label, each label's seeds together, in :data:`CRITERIA`'s order."""
    groups: dict[str, list[dict]] = {}
    for record in sorted(rows, key=lambda r: criterion_rank(r["criterion"])):
        if record["kind"] == "criterion":
            groups.setdefault(record["criterion"], []).append(record)
    return groups


def _cuts(rows: list[dict]) -> dict[str, list[dict]]:
    """The criteria's records by the model they cut, one entry per distinct cut named by every criterion that chose
    it ("Lu et al.'s Q / k-NN accuracy"), holding the records of the one with most seeds (the first where equal)."""
    by_model: dict[str, list[list[dict]]] = {}
    for group in _criteria(rows).values():
        by_model.setdefault(group[0]["pruned_model"], []).append(group)
    return {" / ".join(group[0]["criterion"] for group in groups): max(groups, key=len)
            for groups in by_model.values()}


def _finetuned(rows: list[dict]) -> list[float]:
    return [record["row"]["accuracy_finetuned"] for record in rows]


def _matched(rows: list[dict], own: str) -> list[float]:
    """The fine-tuned accuracies of the random cuts matched to any criterion that chose the cut ``own``, one per
    cut, but for ``own`` itself (where the size classes allow few cuts, every one is trained, the criterion's among
    them: SPEC 19-20)."""
    return list({r["pruned_model"]: r["row"]["accuracy_finetuned"] for r in _drawn_for(rows, own)
                 if r["pruned_model"] != own}.values())


def _drawn_for(rows: list[dict], own: str) -> list[dict]:
    """The random cuts' records matched to a criterion that chose the cut ``own``."""
    names = {r["criterion"] for r in rows if r["kind"] == "criterion" and r["pruned_model"] == own}
    return [r for r in rows if r["kind"] == "random" and r["matches"] in names]


def block_claim_e(rows: list[dict]) -> tuple[str, str]:
    """SPEC 20's verdict on claim (e) for one block's rows at the block's epochs: holds, fails or undecided."""
    m_label, q_label = CRITERIA["M"].label, CRITERIA["lu_q"].label
    criteria, control = _criteria(rows), _accuracies(rows, "control")
    if m_label not in criteria or not control:
        return "not measured yet", f"{len(rows)} row{'s' * (len(rows) != 1)}"
    own = criteria[m_label][0]["pruned_model"]
    if q_label not in criteria:
        return "undecided", "no row of Lu et al.'s Q yet"
    if criteria[q_label][0]["pruned_model"] == own:
        return "undecided", "M and Q cut the same units: one model, no difference to judge"
    others = {name: _finetuned(group) for name, group in _cuts(rows).items()
              if group[0]["pruned_model"] != own}  # a criterion cutting M's model is M's row
    verdict, why = claim_e(_finetuned(criteria[m_label]), control, _matched(rows, own), others)
    counts = {len(values) for values in others.values()}
    seeds = f"M {len(criteria[m_label])}, " + (f"every other cut {counts.pop()}" if len(counts) == 1 else
                                                ", ".join(f"{name} {len(values)}" for name, values in others.items()))
    return {True: "holds", False: "fails", None: "undecided"}[verdict], f"{why}; seeds: {seeds}"


def in_short(mains: dict[str, list[dict]]) -> str:
    """The verdicts in two sentences: the blocks per verdict on claim (e), and per block M's cut against the random
    cuts of its size (``mains``: each block's rows at its epochs)."""
    def grouped(words: dict[str, str]) -> str:
        blocks: dict[str, list[str]] = {}
        for name, word in words.items():
            blocks.setdefault(word, []).append(name)
        return "; ".join(f"{word} on {', '.join(names)}" for word, names in blocks.items())

    claims = grouped({name: block_claim_e(rows)[0] for name, rows in mains.items()})
    chance = grouped({name: m_against_random(rows) for name, rows in mains.items()})
    return (f"**In short**, claim (e) by SPEC 20's rules: {claims}. M's cut against the random cuts of its size: "
            f"{chance}.")


def m_against_random(rows: list[dict]) -> str:
    """M's cut against the random cuts matched to it that are not its own, by SPEC 20's rule, in words."""
    criteria = _criteria(rows)
    if CRITERIA["M"].label not in criteria:
        return "no row of M yet"
    return _versus_random(rows, criteria[CRITERIA["M"].label], noise_level(_accuracies(rows, "control")))


def _versus_random(rows: list[dict], group: list[dict], noise: float | None) -> str:
    """A cut (``group``: one criterion's records of it, its seeds) against the random cuts matched to the criteria
    that chose it, but for itself, by SPEC 20's rule at noise level ``noise``, in words."""
    own = group[0]["pruned_model"]
    randoms = _matched(rows, own)
    if randoms:
        return "against random: no noise level yet" if noise is None else against_random(_finetuned(group),
                                                                                           randoms, noise)
    return "no random cut but its own" if _drawn_for(rows, own) else "no random cut matched to it"


def most_accurate(rows: list[dict]) -> str:
    """The criterion whose seeds' mean is highest at this size, and how it stands against its random cuts."""
    cuts = _cuts(rows)
    if not cuts:
        return "-"
    label, group = max(cuts.items(), key=lambda item: statistics.mean(_finetuned(item[1])))
    values, noise = _finetuned(group), noise_level(_accuracies(rows, "control"))
    versus = _versus_random(rows, group, noise)
    near = [name for name, other in cuts.items() if name != label and noise is not None and
            at_equal_accuracy(_finetuned(other), values, noise)]
    first = group[0]["row"]
    chosen = {group[0]["pruned_model"] for group in cuts.values()}  # a random cut that drew a criterion's is its
    luck = max((r for r in rows if r["kind"] == "random" and r["pruned_model"] not in chosen),
               key=lambda r: r["row"]["accuracy_finetuned"], default=None)
    lead = None if luck is None else luck["row"]["accuracy_finetuned"] - statistics.mean(values)
    beyond = "above it by more than 2 s" if noise is not None and lead is not None and lead > 2 * noise else \
        "higher, but within 2 s of it" if noise is not None else "higher"
    return (f"highest mean of a criterion: {label} {statistics.mean(values):.2f} ({len(values)} seed"
            f"{'s' * (len(values) != 1)}, {first['params_saved_pct']:.2f}% of the parameters and "
            f"{first['flops_saved_pct']:.2f}% of the FLOPs saved); {versus}" +
            (f"; within 2 s of it: {', '.join(near)}" if near else "") +
            (f"; a random cut (matching {luck['matches']}, {luck['row']['params_saved_pct']:.2f}% saved) reached "
             f"{luck['row']['accuracy_finetuned']:.2f}, {beyond}" if lead is not None and lead > 0 else ""))


def most_saved(rows: list[dict]) -> str:
    """Among a model's criteria (every target), the one at equal accuracy with the control (SPEC 20) or above it
    that saves most parameters, or why there is none."""
    control = _accuracies(rows, "control")
    noise = noise_level(control)
    if noise is None:
        return f"not judged yet (control seeds: {len(control)}; SPEC 20 needs 3)."
    groups = [item for block_rows_ in _by_block(rows) for item in _cuts(block_rows_).items()]
    equal = [(name, group) for name, group in groups
             if statistics.mean(_finetuned(group)) >= statistics.mean(control) - 2 * noise]
    if not equal:
        closest = min(groups, key=lambda item: abs(statistics.mean(_finetuned(item[1])) - statistics.mean(control)),
                      default=None)
        return (f"no criterion's cut reaches it (2 s = {2 * noise:.2f} points)" + (
            f"; the closest, {closest[0]} at {closest[1][0]['row']['params_saved_pct']:.2f}% saved, is "
            f"{statistics.mean(_finetuned(closest[1])) - statistics.mean(control):+.2f} points from the control."
            if closest else "."))
    name, best = max(equal, key=lambda item: item[1][0]["row"]["params_saved_pct"])
    return (f"{name} saves most, {best[0]['row']['params_saved_pct']:.2f}% of the parameters at "
            f"{statistics.mean(_finetuned(best)) - statistics.mean(control):+.2f} points ({len(best)} "
            f"seed{'s' * (len(best) != 1)}, block {best[0]['block']}, 2 s = {2 * noise:.2f}).")


def _by_block(rows: list[dict]) -> list[list[dict]]:
    return [[r for r in rows if r["block"] == name] for name in dict.fromkeys(r["block"] for r in rows)]


def proxy_rank(rows: list[dict]) -> str:
    """Spearman's rank correlation of the proxy with the fine-tuned accuracy over the block's distinct pruned models
    at seed 0, with both ranges: a rank among proxies all near chance, or among accuracies within a few s, says
    little, and the reader should see when it is so."""
    from scipy.stats import spearmanr

    pairs = {r["pruned_model"]: (r["row"]["accuracy_proxy"], r["row"]["accuracy_finetuned"]) for r in rows
             if r["seed"] == 0 and r["kind"] != "control" and r["row"]["accuracy_proxy"] is not None}
    if len(pairs) < 3:
        return f"- ({len(pairs)} cut{'s' * (len(pairs) != 1)})"
    proxy, tuned = zip(*pairs.values(), strict=True)
    return f"{spearmanr(proxy, tuned).statistic:+.2f} ({len(pairs)} cuts; proxies {_range(proxy)}, fine-tuned " \
        f"{_range(tuned)})"


def _state(complete: bool) -> str:
    """What the tables hold: every planned row, or the rows so far."""
    return "Every planned row" if complete else "Rows so far"


def _range(values: list[float]) -> str:
    """``values``' range in percent, one number where they are all equal."""
    return f"{min(values):.2f}%" if min(values) == max(values) else f"{min(values):.2f}-{max(values):.2f}%"


def _intro(rows: list[dict], complete: bool) -> str:
    planned = ", ".join(f"block {b.name} ({b.model}, {_target(b)}, {b.epochs} epochs)" for b in BLOCKS)
    machines = sorted({f"{record['processor']}, {record['threads']} threads, {record['precision']}" for record in rows})
    state = ("each block's plan, `docs/table1/BLOCK/plan.json`, is recorded in full" if complete else
             "the run goes on in later sessions; each verdict is of the rows so far")
    return (f"**{_state(complete)}** ({state}; no verdict reads holds or fails before the control has 3 seeds). " +
            f"The plan: {planned}. Every row: the surviving weights, 1 head-only epoch, then the block's epochs of "
            "SGD (lr 0.01 down to 0 by a cosine, momentum 0.9, weight decay 0.005, batch 256, crop + flip) on the "
            "export's 50,000 training images; the cut chosen on the selection half of CIFAR-10 test (JPEG q75 "
            "export), every accuracy measured on the other half (SPEC 21), at the final epoch. Verdicts follow "
            "SPEC 20. Minutes are wall times (of a resumed training, its total) of rows trained while the machine "
            "also did other work: not benchmarks. Machine: " + ("; ".join(machines) or "none yet") + ".")


def block_section(block: Block, rows: list[dict], progress: tuple[int, int] | None = None) -> list[str]:
    """A block's table: how much of its plan is recorded (``progress``: rows recorded, rows planned), one line per
    criterion (seeds pooled), each followed by the random cuts matched to it as mean [min, max] (its own cut, where
    drawn, left out), the budget check, and the noise level."""
    lines = [f"### Block {block.name}: {block.model}, {_target(block)}, {block.epochs} epochs", ""]
    if progress:
        done, planned = progress
        lines += [f"All {planned} planned rows are recorded." if done == planned else
                  f"{done} of {planned} planned rows are recorded so far.", ""]
    main = [record for record in rows if record["epochs"] == block.epochs]
    if not main:
        return lines + ["No row finished yet.", ""]
    sizes = [r["row"]["params_saved_pct"] for r in main if r["kind"] != "control"]
    if sizes:
        lines += [f"The cuts reach {_range(sizes)} of the parameters saved.", ""]
    lines += ["| criterion | cut | parameters saved | FLOPs saved | proxy (%, seed 0) | fine-tuned (%) | seeds | "
              "vs control (points) | verdict (SPEC 20) | minutes |", "|---|---|---:|---:|---:|---|---:|---:|---|---:|"]
    control = _accuracies(main, "control")
    words = dict(zip(map(id, main), verdicts([PruningRow(**record["row"]) for record in main]), strict=True))
    charge, owner = _training_minutes(main), control_block(block).name
    drawn: set[frozenset[str]] = set()  # random lines shown: a criterion cutting another's units draws its cuts
    for kind, criterion in _line_order(main):
        group = [r for r in main if (r["kind"], r["criterion"]) == (kind, criterion)]
        values, first = _finetuned(group), group[0]["row"]
        change = f"{statistics.mean(values) - statistics.mean(control):+.2f}" if control and kind != "control" else "-"
        minutes = f"block {owner}'s" if kind == "control" and owner != block.name else charge(group, criterion)
        lines.append(f"| {criterion} | {_short(group[0]['cut'])} | {first['params_saved_pct']:.2f}% | "
                     f"{first['flops_saved_pct']:.2f}% | {_number(first['accuracy_proxy'])} | {_spread(values)} | "
                     f"{len(values)} | {change} | {words[id(group[0])]} | {minutes} |")
        matched = [r for r in main if r["kind"] == "random" and r["matches"] == criterion]
        models = frozenset(r["pruned_model"] for r in matched)
        if matched and models not in drawn:
            drawn.add(models)
            lines.append(_random_line(criterion, first, matched, group[0]["pruned_model"], control, charge))
    lines += _budget_line([record for record in rows if record["epochs"] != block.epochs])
    noise = noise_level(control)
    shared = "" if owner == block.name else f", the control of block {owner}: the same training"
    lines += ["", f"Noise level s (SPEC 20): {_number(noise, '.3f') if noise is not None else 'not measured'} "
              f"(control seeds: {len(control)}{shared}).", ""]
    return lines + _full_cuts(main)


def _full_cuts(rows: list[dict]) -> list[str]:
    """The criteria's cuts that :func:`_short` shortens in the table, in full, each once with every criterion that
    chose it."""
    cuts: dict[str, list[str]] = {}
    for kind, criterion in _line_order(rows):
        cut = next(r["cut"] for r in rows if (r["kind"], r["criterion"]) == (kind, criterion))
        if kind == "criterion" and _short(cut) != cut:
            cuts.setdefault(cut, []).append(criterion)
    if not cuts:
        return []
    return ["The shortened cuts in full:", "", *(f"- {' / '.join(names)}: {cut}" for cut, names in cuts.items()), ""]


def _target(block: Block) -> str:
    return f"cuts saving at least {block.target:g}% of the parameters"


def _random_line(criterion: str, size: dict, matched: list[dict], own: str, control: list[float],
                 charge: Callable[[list[dict], str], str]) -> str:
    """The table line of the random cuts matched to ``criterion``: those that are not its own cut ``own`` (the few
    size classes of a coarse network may draw it: shown as left out, SPEC 20), as mean [min, max]."""
    line = f"random, matching {criterion}"
    others = _finetuned([r for r in matched if r["pruned_model"] != own])
    drawn = "; its own cut, drawn too, left out" if len(others) < len(matched) else ""
    what = (f"{len(others)} cut{'s' * (len(others) != 1)} of its size classes{drawn}" if others else
            "no other cut of its size classes (the one drawn is its own)")
    accuracy = f"{statistics.mean(others):.2f} [{min(others):.2f}, {max(others):.2f}]" if others else "-"
    change = f"{statistics.mean(others) - statistics.mean(control):+.2f}" if others and control else "-"
    return (f"| {line} | {what} | {size['params_saved_pct']:.2f}% | {size['flops_saved_pct']:.2f}% | - | {accuracy} | "
            f"1 each | {change} | - | {charge(matched, line)} |")


def _budget_line(check: list[dict]) -> list[str]:
    """The budget check's rows (fewer epochs, seed 0): each accuracy, and the minutes they took."""
    if not check:
        return []
    named = [f"{'a random cut matching ' + r['matches'] if r['kind'] == 'random' else r['criterion']} "
             f"{r['row']['accuracy_finetuned']:.2f}%" for r in check]
    minutes = sum(map(_seconds, _trainings(check).values())) / 60
    return ["", f"Budget check at {check[0]['epochs']} epochs (seed 0 each): " + "; ".join(named) +
            f" ({minutes:.1f} min in all)."]


def _line_order(rows: list[dict]) -> list[tuple[str, str]]:
    """A block table's (kind, criterion) lines: the control, then the criteria in :data:`CRITERIA`'s order."""
    lines = dict.fromkeys((r["kind"], r["criterion"]) for r in rows if r["kind"] != "random")
    return sorted(lines, key=lambda line: (line[0] != "control", criterion_rank(line[1]), line[1]))


def _training_minutes(rows: list[dict]) -> Callable[[list[dict], str], str]:
    """A counter of the minutes spent training a table's lines, each training once: a pruned model trained for one
    line (at one seed and epochs) is read back by every other line cutting the same units; its minutes go to the
    first line that asks for it, in the table's order, and a line whose every model an earlier one trained names
    that line instead."""
    seconds = {key: _seconds(record) for key, record in _trainings(rows).items()}
    charged: dict[tuple, str] = {}

    def charge(group: list[dict], line: str) -> str:
        keys = {_training(r) for r in group}
        new = keys - charged.keys()
        if not new:
            return f"the same model{'s' * (len(keys) > 1)} as {charged[min(keys)]}"
        charged.update(dict.fromkeys(new, line))
        return f"{sum(seconds[key] for key in new) / 60:.1f}"

    return charge


def _accuracies(rows: list[dict], kind: str) -> list[float]:
    return _finetuned([record for record in rows if record["kind"] == kind])


def _spread(values: list[float]) -> str:
    if len(values) == 1:
        return f"{values[0]:.2f}"
    if len(values) == 2:
        return f"{values[0]:.2f}, {values[1]:.2f} (range {abs(values[0] - values[1]):.2f})"
    return f"{statistics.mean(values):.2f} ± {statistics.stdev(values):.2f}"


def _number(value: float | None, form: str = ".2f") -> str:
    return "-" if value is None else format(value, form)


def _short(cut: str, limit: int = 70) -> str:
    return cut if len(cut) <= limit else cut[: limit - 3] + "..."


def accuracy_figure(rows: list[dict], complete: bool = False) -> Figure:
    """Per model, fine-tuned accuracy on the report half against parameters saved at the block's epochs (the
    budget check left out), drawn as every ``sepgraph prune`` report draws it (``pruning_tradeoff``); titled "rows so
    far" until the plan is ``complete``."""
    epochs = {block.name: block.epochs for block in BLOCKS}
    rows = [record for record in rows if record["epochs"] == epochs.get(record["block"])]
    panels = {f"{model} ({mine[0]['epochs']} fine-tuning epochs)": [PruningRow(**record["row"]) for record in mine]
              for model in dict.fromkeys(record["model"] for record in rows)
              for mine in [[record for record in rows if record["model"] == model]]}
    return pruning_tradeoff(panels, f"Table 1{'' if complete else ' rows so far'}: CIFAR-10 test (JPEG q75 export), "
                                    "report half")


if __name__ == "__main__":
    main()
