"""The ``sepgraph`` command line: argument parsing only; each subcommand calls the API."""

from __future__ import annotations

import argparse
import json
import logging
import math
import signal
import sys
import time
from collections.abc import Sequence
from dataclasses import fields, replace
from pathlib import Path

from ._version import __version__
from .comparison import pruning_markdown
from .criterion import CURVES, PAPER_CURVES, RULES, check_curves, check_rule
from .data import NORMALIZATIONS, DataSource
from .demo import run_demo
from .devices import parse_memory
from .distributed import start, stop
from .errors import SepgraphError
from .jobs import analyze_and_report, evaluate_checkpoint, point_table, prune, train_model, zoo
from .points import CONVENTIONS
from .report import FORMATS, ReportSettings, render_report
from .settings import VERTEX_CHOICES, GraphSettings, RunSettings
from .training import Recipe


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``sepgraph`` console script; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.debug else logging.WARNING, format="%(levelname)s %(message)s")
    previous = signal.signal(signal.SIGTERM, _terminated)  # a run told to stop records it, like Ctrl-C
    try:
        args.run(args)
    except SepgraphError as error:
        if args.debug:
            raise
        print(f"sepgraph: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        if args.debug:
            raise
        print("sepgraph: interrupted; finished work is kept (rerun with --resume)", file=sys.stderr)
        return 130
    finally:
        signal.signal(signal.SIGTERM, previous)
    return 0


def _terminated(_signal: int, _frame) -> None:
    raise KeyboardInterrupt


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="sepgraph", description="Show how a trained CNN separates classes, layer by layer."
    )
    parser.add_argument("--version", action="version", version=f"sepgraph {__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks and debug logging")
    commands = parser.add_subparsers(title="commands", required=True, metavar="COMMAND")

    demo = commands.add_parser("demo", help="train, analyse, prune and report on embedded digits (no download)")
    demo.add_argument("--out", default="results/demo", help="results folder, replaced (default: results/demo)")
    demo.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N (default: auto)")
    demo.set_defaults(run=run_demo_command)

    models = commands.add_parser("models", help="list the model zoo with parameter and layer-point counts")
    models.add_argument("--pattern", default="*", help="shell-style filter on names (default: all)")
    models.set_defaults(run=run_models)

    points = commands.add_parser("points", help="list a model's layer points and their feature shapes")
    points.add_argument("model", help="zoo name, torchvision:NAME or timm:NAME")
    _add_point_options(points)
    points.add_argument("--input-size", type=int, help="input height and width (default: the model's)")
    points.add_argument("--num-classes", type=int, default=10, help="head size (default: 10)")
    points.set_defaults(run=run_points)

    evaluation = commands.add_parser("eval", help="accuracy of a checkpoint on a dataset")
    _add_model_options(evaluation)
    _add_data_options(evaluation)
    evaluation.add_argument("--batch-size", type=int, default=256, help="images per forward pass (default: 256)")
    evaluation.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N (default: auto)")
    evaluation.add_argument("--json", action="store_true", help="print the result as JSON")
    evaluation.set_defaults(run=run_eval)

    analysis = commands.add_parser("analyze", help="histograms, subgraphs, M and Lu et al.'s Q at every layer point")
    _add_model_options(analysis)
    _add_data_options(analysis)
    _add_point_options(analysis)
    _add_graph_options(analysis)
    run = _add_run_options(analysis, batch_size=True)
    run.add_argument("--out", default="results/analysis", help="results folder (default: results/analysis)")
    run.add_argument("--resume", action="store_true", help="continue an interrupted analysis in --out")
    run.add_argument("--overwrite", action="store_true", help="replace what --out holds")
    run.add_argument("--no-report", action="store_true", help="skip the figures and report.html")
    run.add_argument("--timeout", type=_positive_seconds, default=600.0,
                     help="under torchrun: seconds a collective operation waits for the other processes before the "
                          "job stops (default: 600)")
    _add_report_options(analysis)
    analysis.set_defaults(run=run_analyze)

    training = commands.add_parser("train", help="train a zoo model with the paper's recipe (SPEC 10)")
    _add_model_options(training)
    training.add_argument("--data", default="digits:train", help="training data (default: digits:train)")
    training.add_argument("--test-data", help="data to report test accuracy on after every epoch")
    training.add_argument("--normalize", default="cifar10", choices=list(NORMALIZATIONS),
                          help="per-channel normalisation (default: cifar10)")
    training.add_argument("--data-root", default="data", help="where torchvision datasets live (default: ./data)")
    training.add_argument("--download", action="store_true", help="allow torchvision to download the dataset")
    _add_recipe_options(training, epochs=150)
    training.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N (default: auto)")
    training.add_argument("--out", default="runs/train", help="folder for model.pt, state.pt, metrics.json")
    training.add_argument("--resume", action="store_true", help="continue the run in --out exactly")
    tracking = training.add_argument_group("dynamics (SPEC 17)")
    tracking.add_argument("--track-every", type=int, default=0, metavar="K",
                          help="measure M, Lu et al.'s Q and k-NN accuracy at every layer point before training and "
                          "every K epochs into --out/dynamics.csv and dynamics.png (default: 0, off)")
    tracking.add_argument("--track-data", help="data to measure them on (default: --test-data, else --data)")
    tracking.add_argument("--track-vertices", type=int, default=500,
                          help="vertices of each measurement (default: 500, at most 90%% of the data)")
    training.set_defaults(run=run_train)

    prune = commands.add_parser("prune", help="cut where each curve says (M and Lu et al.'s Q by default), fine-tune, "
                                "compare beside an unpruned control")
    prune.add_argument("folder", help="a results folder written by 'sepgraph analyze' on a zoo model, or where "
                       "to write one first when --model is given")
    prune.add_argument("--model", help="analyse this zoo model first (with --weights, --data, --normalize and the "
                       "graph options) when FOLDER holds no analysis")
    prune.add_argument("--weights", help="checkpoint of --model")
    prune.add_argument("--data", help="data to analyse --model on (needed with --model, e.g. its test set)")
    prune.add_argument("--normalize", default="cifar10", choices=list(NORMALIZATIONS),
                       help="normalisation for the analysis of --model (default: cifar10)")
    prune.add_argument("--train-data", required=True, help="data to refit the head and fine-tune on")
    prune.add_argument("--test-data", help="data to measure accuracy on (default: the analysis's data)")
    prune.add_argument("--data-root", default="data", help="where torchvision datasets live (default: ./data)")
    prune.add_argument("--rule", action="append", type=_rule,
                       help="Criterion I rule, RULE or RULE=TAU, repeatable: plateau and peak truncate, delta and "
                       "delta-abs remove units (SPEC 8; default: plateau)")
    prune.add_argument("--tau", type=float, help="the parameter of rules given without one (default: 0.02 plateau "
                       "and delta, 0.03 delta-abs)")
    prune.add_argument("--curves", type=_curves, default=PAPER_CURVES, metavar="CURVE,...",
                       help=f"curves to cut by, one pruned model each per rule: {', '.join(CURVES)} "
                       "(default: M,lu_q; SPEC 16)")
    prune.add_argument("--equal-units", action="store_true",
                       help="add delta rows where each curve removes as many units as the first does under delta")
    prune.add_argument("--reference-cut", action="append", default=[], metavar="SPEC",
                       help="also train a published or hand-picked cut, e.g. resnet56+remove=layer1.2,layer1.3 "
                       "(repeatable)")
    prune.add_argument("--init", default="finetune", choices=("finetune", "scratch"),
                       help="start from the surviving weights or from scratch (default: finetune)")
    prune.add_argument("--head-epochs", type=int, default=1, help="epochs of head-only training (default: 1)")
    _add_recipe_options(prune, epochs=150)
    prune.add_argument("--convention", default="paper", choices=CONVENTIONS,
                       help="layer-point convention of the analysis of --model (SPEC 1, default: paper)")
    _add_run_options(prune, batch_size=False)  # the recipe's --batch-size is the training batch
    _add_graph_options(prune, seed=False)  # the recipe's --seed serves both
    prune.set_defaults(run=run_prune)

    report = commands.add_parser("report", help="(re)render figures and report.html of a results folder")
    report.add_argument("folder", help="a results folder written by 'sepgraph analyze'")
    _add_report_options(report)
    report.set_defaults(run=run_report)
    return parser


def _add_graph_options(parser: argparse.ArgumentParser, seed: bool = True) -> None:
    """One flag per :class:`GraphSettings` field (``--seed`` optional), its defaults taken from the record."""
    graph = parser.add_argument_group("graph (SPEC 2-7)")
    meaning = {
        "vertices": (int, "subgraph vertices N"), "edges": (int, "subgraph edges |E|"),
        "hist_samples": (_all_or_int, "samples whose pairs the histograms count: all or a number"),
        "bins": (int, "histogram bins over [0, 1]"),
        "vertex_choice": (str, f"how vertices and Lu et al.'s batches are chosen: {' or '.join(VERTEX_CHOICES)}"),
        "seed": (int, "seed of the stratified choice and of a model without --weights"),
        "lu_k": (int, "Lu et al.'s kNN k"), "lu_batch_size": (int, "Lu et al.'s batch size"),
        "lu_batches": (int, "Lu et al.'s number of batches"),
        "knn_k": (int, "neighbours of the vertices' leave-one-out k-NN accuracy (SPEC 13)"),
        "probe_ridge": (float, "ridge lambda of the vertices' linear probe (SPEC 14)"),
    }
    for field in fields(GraphSettings):
        if field.name == "seed" and not seed:
            continue
        kind, text = meaning[field.name]
        graph.add_argument("--" + field.name.replace("_", "-"), type=kind, default=field.default,
                           help=f"{text} (default: {field.default})")


def _add_run_options(parser: argparse.ArgumentParser, batch_size: bool) -> argparse._ArgumentGroup:
    run = parser.add_argument_group("run")
    run.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N (default: auto)")
    run.add_argument("--max-memory", type=_memory,
                     help="bytes of features held at once, e.g. 2G (default: a quarter of RAM, at most 2G, "
                          "or one layer point's features if larger and within half of RAM)")
    run.add_argument("--spill-dir", help="one forward pass for all points, their features streamed to a temporary "
                     "folder here and read back one point at a time (needs disk for all of them; default: one pass "
                     "per group of points that fits --max-memory)")
    run.add_argument("--tile-rows", type=int, help="rows of a similarity tile (default: 1024 on the CPU, 4096 on "
                     "CUDA); runs across any number of processes give the same bytes at the same tile rows")
    if batch_size:
        run.add_argument("--batch-size", dest="forward_batch_size", type=int, default=RunSettings.batch_size,
                         help=f"images per forward pass (default: {RunSettings.batch_size})")
    else:
        parser.set_defaults(forward_batch_size=RunSettings.batch_size)
    return run


def _curves(text: str) -> tuple[str, ...]:
    try:
        return check_curves([curve.strip() for curve in text.split(",") if curve.strip()])
    except SepgraphError as error:
        raise argparse.ArgumentTypeError(str(error)) from error


def _memory(text: str) -> int:
    try:
        return parse_memory(text)
    except SepgraphError as error:
        raise argparse.ArgumentTypeError(str(error)) from error


def _positive_seconds(text: str) -> float:
    try:
        seconds = float(text)
    except ValueError:
        seconds = float("nan")
    if not 0 < seconds < float("inf"):
        raise argparse.ArgumentTypeError(f"must be a positive number of seconds, got {text!r}")
    return seconds


def _add_recipe_options(parser: argparse.ArgumentParser, epochs: int) -> None:
    group = parser.add_argument_group("training recipe (SPEC 10)")
    defaults = Recipe()
    group.add_argument("--epochs", type=int, default=epochs, help=f"epochs (default: {epochs})")
    group.add_argument("--lr", type=float, default=defaults.lr, help=f"SGD learning rate (default: {defaults.lr})")
    group.add_argument("--momentum", type=float, default=defaults.momentum, help="SGD momentum (default: 0.9)")
    group.add_argument("--weight-decay", type=float, default=defaults.weight_decay,
                       help="weight decay (default: 0.005)")
    group.add_argument("--batch-size", type=int, default=defaults.batch_size, help="batch size (default: 256)")
    group.add_argument("--milestones", default="50,100", help="epochs where lr is multiplied by --gamma")
    group.add_argument("--gamma", type=float, default=defaults.gamma, help="lr factor at milestones (default: 0.1)")
    group.add_argument("--no-augment", action="store_true", help="no random crop and flip")
    group.add_argument("--seed", type=int, default=0,
                       help="seed of shuffling, augmentation, init and vertex choice (default: 0)")


def _recipe(args: argparse.Namespace) -> Recipe:
    try:
        milestones = tuple(int(m) for m in args.milestones.split(",") if m.strip())
    except ValueError as error:
        raise SepgraphError(f"--milestones must be comma-separated epochs, got {args.milestones!r}") from error
    return Recipe(epochs=args.epochs, lr=args.lr, momentum=args.momentum, weight_decay=args.weight_decay,
                  batch_size=args.batch_size, milestones=milestones, gamma=args.gamma,
                  augment=not args.no_augment, seed=args.seed)


def _add_report_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("report")
    group.add_argument("--format", default="png", choices=FORMATS, help="figure file format (default: png)")
    group.add_argument("--dpi", type=int, default=150, help="figure resolution (default: 150)")
    group.add_argument("--ring-edges", type=int, help="draw only the strongest K edges per ring panel")
    group.add_argument("--rule", default="plateau", choices=RULES, help="Criterion I rule (SPEC 8, default: plateau)")
    group.add_argument("--tau", type=float, help="the rule's parameter (default: 0.02 plateau and delta, "
                       "0.03 delta-abs)")


def _rule(text: str) -> tuple[str, float | None]:
    rule, equals, tau = text.partition("=")
    try:
        parameter = float(tau) if equals else None
        check_rule(rule, parameter)
    except ValueError as error:
        raise argparse.ArgumentTypeError(f"expected RULE=NUMBER, got {text!r}") from error
    except SepgraphError as error:
        raise argparse.ArgumentTypeError(str(error)) from error
    return rule, parameter


def _all_or_int(text: str) -> str | int:
    if text == "all":
        return text
    try:
        return int(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(f"expected 'all' or a number, got {text!r}") from error


def _add_model_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", required=True,
                        help="zoo name (see 'sepgraph models'), torchvision:NAME or timm:NAME")
    parser.add_argument("--weights", help="checkpoint file (state_dict; read with weights_only=True)")
    parser.add_argument("--num-classes", type=int, help="head size (default: the dataset's number of classes)")


def _add_data_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data", default="digits",
                        help="digits[:test|train|all], cifar10[:test|train], npz:PATH or imagefolder:PATH "
                        "(default: digits)")
    parser.add_argument("--normalize", default="cifar10", choices=list(NORMALIZATIONS),
                        help="per-channel normalisation after scaling to [0, 1] (default: cifar10)")
    parser.add_argument("--data-root", default="data", help="where torchvision datasets live (default: ./data)")
    parser.add_argument("--download", action="store_true", help="allow torchvision to download the dataset")
    parser.add_argument("--image-size", type=int, help="resize and centre-crop imagefolder images to this size")


def _add_point_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--convention", default="paper", choices=CONVENTIONS, help="layer-point convention (SPEC 1)")
    parser.add_argument("--points", help="comma-separated module names (name or name:k), instead of a convention")


def _points(args: argparse.Namespace) -> str | list[str]:
    """--convention, or the --points list when given."""
    if args.points is None:
        return args.convention
    return [name.strip() for name in args.points.split(",") if name.strip()]


def _data(args: argparse.Namespace) -> DataSource:
    return DataSource(args.data, args.data_root, args.download, args.image_size)


def _graph_settings(args: argparse.Namespace) -> GraphSettings:
    return GraphSettings(**{field.name: getattr(args, field.name) for field in fields(GraphSettings)})


def _run_settings(args: argparse.Namespace) -> RunSettings:
    return RunSettings(device=args.device, max_memory=args.max_memory, spill_dir=args.spill_dir,
                       batch_size=args.forward_batch_size, tile_rows=args.tile_rows)


def _report_settings(args: argparse.Namespace) -> ReportSettings:
    return ReportSettings(file_format=args.format, dpi=args.dpi, ring_edges=args.ring_edges, rule=args.rule,
                          parameter=args.tau)


def run_demo_command(args: argparse.Namespace) -> None:
    started = time.perf_counter()
    report = run_demo(args.out, device=args.device)
    print(f"done in {time.perf_counter() - started:.0f} s. Open the report: {report}")


def run_models(args: argparse.Namespace) -> None:
    entries = zoo(args.pattern)
    if not entries:
        raise SepgraphError(f"no zoo model matches {args.pattern!r}")
    print(f"{'model':<14}{'family':<14}{'parameters':>13}" + "".join(f"{c:>9}" for c in CONVENTIONS))
    for entry in entries:
        counts = "".join(f"{entry.points[c]:>9}" for c in CONVENTIONS)
        print(f"{entry.name:<14}{entry.family:<14}{entry.parameters:>13,}{counts}")
    print("\nAlso: torchvision:NAME (any torchvision classifier) and timm:NAME (with timm installed); "
          "their 'paper' points are discovered from a traced forward pass.")


def run_points(args: argparse.Namespace) -> None:
    (channels, height, width), table = point_table(args.model, _points(args), args.num_classes, args.input_size)
    label = "explicit list" if args.points is not None else f"convention {args.convention}"
    print(f"{args.model}: {len(table)} layer points ({label}), input {channels}x{height}x{width}")
    print(f"{'index':>5}  {'name':<28}{'module':<28}{'shape':<16}{'dim':>9}")
    for index, (point, shape) in enumerate(table):
        module = point.module + (f":{point.call}" if point.call else "")
        print(f"{index:>5}  {point.name:<28}{module:<28}{'x'.join(map(str, shape)):<16}{math.prod(shape):>9,}")


def run_eval(args: argparse.Namespace) -> None:
    result, record = evaluate_checkpoint(args.model, _data(args), weights=args.weights, num_classes=args.num_classes,
                                         normalize=args.normalize, batch_size=args.batch_size, device=args.device)
    if args.json:
        print(json.dumps(record, indent=2))
        return
    sha256 = record["weights_sha256"]
    weights = f"{args.weights} (sha256 {sha256[:12]})" if sha256 else "random initialisation (no --weights)"
    print(f"model      {args.model}, {weights}")
    print(f"data       {record['data_description']}, {result.total} images, normalisation {args.normalize}")
    print(f"accuracy   {result.accuracy:.2f}% ({result.correct}/{result.total}), "
          f"mean loss {result.loss:.4f}, {result.seconds:.1f} s")


def run_analyze(args: argparse.Namespace) -> None:
    workers, device = start(args.device, args.timeout)  # one process, or one rank of a torchrun job (SPEC 18)
    try:
        result, report = analyze_and_report(
            args.model, _data(args), _graph_settings(args), weights=args.weights, num_classes=args.num_classes,
            normalize=args.normalize, points=_points(args), run=replace(_run_settings(args), device=device),
            out=args.out, resume=args.resume, overwrite=args.overwrite,
            report=None if args.no_report or not workers.leader else _report_settings(args))
    finally:
        stop()
    if not workers.leader:
        return
    print(f"{'index':>5}  {'name':<24}{'mean_sim':>9}{'<0.1':>7}{'r':>8}{'M':>9}{'newman_q':>9}{'lu_q':>15}"
          f"{'knn':>7}{'probe':>7}{'cka_last':>9}")
    for row in result.rows:
        print(f"{row.index:>5}  {row.name:<24}{row.mean_sim:>9.4f}{row.share_below_0_1:>7.3f}"
              f"{row.r:>8.4f}{row.M:>9.4f}{row.newman_q:>9.4f}{row.lu_q_mean:>9.4f}±{row.lu_q_std:.3f}"
              f"{row.knn_acc:>7.3f}{row.probe_acc:>7.3f}{row.cka_last:>9.4f}")
    seconds = result.manifest["seconds"]
    print(f"\n{len(result.rows)} layer points in {seconds['total']:.1f} s; results in {result.path}/ "
          "(manifest.json, layers.csv, edges/)")
    if report is not None:
        print(f"figures in {report.parent / 'figures'}/; report: {report}")


def run_train(args: argparse.Namespace) -> None:
    test = DataSource(args.test_data, args.data_root, args.download) if args.test_data else None
    run = train_model(args.model, DataSource(args.data, args.data_root, args.download), out=args.out, test_data=test,
                      weights=args.weights, num_classes=args.num_classes, normalize=args.normalize,
                      recipe=_recipe(args), resume=args.resume, device=args.device, track_every=args.track_every,
                      track_data=DataSource(args.track_data, args.data_root, args.download) if args.track_data
                      else None, track_vertices=args.track_vertices)
    last = run.metrics[-1] if run.metrics else {}
    summary = ", ".join(f"{k} {v:.2f}" for k, v in last.items() if k.endswith("accuracy"))
    print(f"trained {args.model} for {len(run.metrics)} epochs ({summary}); weights: {run.out / 'model.pt'}")
    if args.track_every:
        print(f"dynamics: {run.out / 'dynamics.csv'}, {run.out / 'dynamics.png'}")


def run_prune(args: argparse.Namespace) -> None:
    recipe = _recipe(args)
    table, report = prune(
        args.folder, DataSource(args.train_data, args.data_root),
        test_data=DataSource(args.test_data, args.data_root) if args.test_data else None, model=args.model,
        weights=args.weights, data=DataSource(args.data, args.data_root) if args.data else None,
        normalize=args.normalize, points=args.convention, settings=_graph_settings(args), run=_run_settings(args),
        rules=args.rule or (), curves=args.curves,
        tau=args.tau, equal_units=args.equal_units, reference_cuts=args.reference_cut, init=args.init,
        head_epochs=args.head_epochs, recipe=recipe, device=args.device)
    print(pruning_markdown(table, recipe))
    print(f"table: {Path(args.folder) / 'pruning.csv'}; report: {report}")


def run_report(args: argparse.Namespace) -> None:
    report = render_report(args.folder, _report_settings(args))
    print(f"figures in {report.parent / 'figures'}/; report: {report}")


if __name__ == "__main__":
    sys.exit(main())
