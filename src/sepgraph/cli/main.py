"""The ``sepgraph`` command line: parse (:mod:`.options`), call one library function per command
(:mod:`sepgraph.verbs`), print; library errors are printed in one line with their arguments written as flags."""

from __future__ import annotations

import argparse
import json
import logging
import math
import re
import signal
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import fields, replace
from pathlib import Path

import numpy as np

from ..analysis.compare import compare
from ..analysis.run import Analysis, measure
from ..data.sources import DataSource
from ..errors import SepgraphError
from ..models.points import CONVENTIONS
from ..parallel.workers import start, stop
from ..progress import set_quiet
from ..pruning.options import PruningOptions, rules_with_tau
from ..pruning.table import pruning_markdown
from ..report.html import ReportSettings, render_comparison, render_report
from ..settings import GraphSettings, RunSettings
from ..training.recipe import Recipe
from ..verbs import analyze_and_report, evaluate_checkpoint, point_table, prune, train, zoo
from .demo import DEMO_RECIPE, run_demo
from .options import build_parser

FLAG_ALIASES = {
    "train": {"every": "--track-every", "vertices": "--track-vertices"},
    "points": {"size": "--input-size"},
    "analyze": {"file_format": "--format"},
    "report": {"file_format": "--format"},
}
"""Library argument names whose flag is not ``--`` plus the name with dashes, per command."""


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``sepgraph`` console script; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.debug else logging.WARNING, format="%(levelname)s %(message)s")
    set_quiet(args.quiet)
    previous = signal.signal(signal.SIGTERM, _terminated)  # a run told to stop records it, like Ctrl-C
    try:
        HANDLERS[args.command](args)
    except SepgraphError as error:
        if args.debug:
            raise
        print(f"sepgraph: error: {as_flags(error, parser, args.command)}", file=sys.stderr)
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


def as_flags(error: SepgraphError, parser: argparse.ArgumentParser, command: str) -> str:
    """The error's message with the first mention of each argument it names written as ``command``'s flag."""
    flags = _flags(parser, command)
    message = str(error)
    for name in error.arguments:
        if name in flags:
            message = re.sub(rf"(?<![\w.-]){re.escape(name)}(?![\w-])", flags[name], message, count=1)
    return message


def _flags(parser: argparse.ArgumentParser, command: str) -> dict[str, str]:
    """Argument name -> flag, for ``command``'s options (``--batch-size`` for ``batch_size``) and its aliases."""
    subcommands = next(action for action in parser._actions if isinstance(action, argparse._SubParsersAction))
    flags = {option[2:].replace("-", "_"): option for action in subcommands.choices[command]._actions
             for option in action.option_strings if option.startswith("--")}
    return flags | FLAG_ALIASES.get(command, {})


def _points(args: argparse.Namespace) -> str | list[str]:
    """--convention, or the --points list when given."""
    if args.points is None:
        return args.convention
    return [name.strip() for name in args.points.split(",") if name.strip()]


def _data(args: argparse.Namespace) -> DataSource:
    return _source(args, args.data)


def _source(args: argparse.Namespace, spec: str | None) -> DataSource | None:
    """The one way a data flag becomes a :class:`DataSource`: its spec with the command's data options."""
    if not spec:
        return None
    return DataSource(spec, args.data_root, getattr(args, "download", False), getattr(args, "image_size", None),
                      args.image_column, args.label_column)


def _graph_settings(args: argparse.Namespace) -> GraphSettings:
    return GraphSettings(**{field.name: getattr(args, field.name) for field in fields(GraphSettings)})


def _run_settings(args: argparse.Namespace) -> RunSettings:
    return RunSettings(device=args.device, max_memory=args.max_memory, spill_dir=args.spill_dir,
                       batch_size=args.forward_batch_size, tile_rows=args.tile_rows, gemm=args.gemm)


def _recipe(args: argparse.Namespace) -> Recipe:
    try:
        milestones = tuple(int(m) for m in args.milestones.split(",") if m.strip())
    except ValueError as error:
        raise SepgraphError(f"--milestones must be comma-separated epochs, got {args.milestones!r}") from error
    return Recipe(epochs=args.epochs, lr=args.lr, momentum=args.momentum, weight_decay=args.weight_decay,
                  batch_size=args.batch_size, milestones=milestones, gamma=args.gamma,
                  augment=not args.no_augment, seed=args.seed, precision=args.precision,
                  memory_format=args.memory_format, schedule=args.schedule)


def _report_settings(args: argparse.Namespace) -> ReportSettings:
    return ReportSettings(file_format=args.format, dpi=args.dpi, ring_edges=args.ring_edges, rule=args.rule,
                          parameter=args.tau)


def _demo(args: argparse.Namespace) -> None:
    started = time.perf_counter()
    report = run_demo(args.out, device=args.device, recipe=replace(DEMO_RECIPE, precision=args.precision))
    print(f"done in {time.perf_counter() - started:.0f} s. Open the report: {report}")


def _models(args: argparse.Namespace) -> None:
    entries = zoo(args.pattern)
    if not entries:
        raise SepgraphError(f"no zoo model matches {args.pattern!r}")
    print(f"{'model':<14}{'family':<14}{'parameters':>13}" + "".join(f"{c:>9}" for c in CONVENTIONS))
    for entry in entries:
        counts = "".join(f"{entry.points[c]:>9}" for c in CONVENTIONS)
        print(f"{entry.name:<14}{entry.family:<14}{entry.parameters:>13,}{counts}")
    print("\nAlso: torchvision:NAME (any torchvision classifier) and timm:NAME (with timm installed); "
          "their 'paper' points are discovered from a traced forward pass.")


def _list_points(args: argparse.Namespace) -> None:
    (channels, height, width), table = point_table(args.model, _points(args), args.num_classes, args.input_size)
    label = "explicit list" if args.points is not None else f"convention {args.convention}"
    print(f"{args.model}: {len(table)} layer points ({label}), input {channels}x{height}x{width}")
    print(f"{'index':>5}  {'name':<28}{'module':<28}{'shape':<16}{'dim':>9}")
    for index, (point, shape) in enumerate(table):
        module = point.module + (f":{point.call}" if point.call else "")
        print(f"{index:>5}  {point.name:<28}{module:<28}{'x'.join(map(str, shape)):<16}{math.prod(shape):>9,}")


def _eval(args: argparse.Namespace) -> None:
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


def _analyze(args: argparse.Namespace) -> None:
    workers, device = start(args.device, args.timeout)  # one process, or one rank of a torchrun job (SPEC 18)
    try:
        result, report = analyze_and_report(
            args.model, _data(args), _graph_settings(args), weights=args.weights, num_classes=args.num_classes,
            normalize=args.normalize, points=_points(args), run=replace(_run_settings(args), device=device),
            out=args.out, resume=args.resume, overwrite=args.overwrite,
            report=None if args.no_report or not workers.leader else _report_settings(args))
    finally:
        stop()
    if workers.leader:
        _print_analysis(result, report)


def _print_analysis(result: Analysis, report: Path | None) -> None:
    """Every point's main measures, the time taken, and where the results are."""
    print(f"{'index':>5}  {'name':<24}{'mean_sim':>9}{'<0.1':>7}{'r':>8}{'M':>9}{'newman_q':>9}{'lu_q':>15}"
          f"{'knn':>7}{'probe':>7}{'cka_last':>9}")
    for row in result.rows:
        print(f"{row.index:>5}  {row.name:<24}{row.mean_sim:>9.4f}{row.share_below_0_1:>7.3f}"
              f"{row.r:>8.4f}{row.M:>9.4f}{row.newman_q:>9.4f}{row.lu_q_mean:>9.4f}±{row.lu_q_std:.3f}"
              f"{row.knn_acc:>7.3f}{row.probe_acc:>7.3f}{row.cka_last:>9.4f}")
    seconds = result.manifest.seconds
    print(f"\n{len(result.rows)} layer points in {seconds['total']:.1f} s; results in {result.path}/ "
          "(manifest.json, layers.csv, edges/)")
    if report is not None:
        print(f"figures in {report.parent / 'figures'}/; report: {report}")


def _measure(args: argparse.Namespace) -> None:
    labels = _labels(args.labels)
    classes = [name.strip() for name in args.classes.split(",")] if args.classes else None
    points = [name.strip() for name in args.points.split(",") if name.strip()] if args.points else None
    result = measure(args.features, labels, _graph_settings(args), points=points, classes=classes,
                     description=args.description, run=_run_settings(args), out=args.out, resume=args.resume,
                     overwrite=args.overwrite)
    report = None if args.no_report else render_report(result.path, _report_settings(args))
    _print_analysis(result, report)


def _labels(path: str) -> np.ndarray:
    """The samples' classes from an .npy file, in one line when it cannot be read."""
    try:
        return np.load(path, allow_pickle=False)
    except (OSError, ValueError) as error:
        raise SepgraphError(f"labels {path!r} cannot be read as an .npy array ({error}); save the classes with "
                            "numpy.save", arguments=("labels",)) from error


def _compare(args: argparse.Namespace) -> None:
    result = compare(args.model_a, args.model_b, _data(args), _graph_settings(args), weights_a=args.weights_a,
                     weights_b=args.weights_b, data_b=_source(args, args.data_b), normalize=args.normalize,
                     normalize_b=args.normalize_b, num_classes=args.num_classes, points=_points(args),
                     run=_run_settings(args), out=args.out, resume=args.resume, overwrite=args.overwrite)
    print(f"model x model linear CKA: {result.matrix}")
    if not args.no_report:
        report = render_comparison(result.path, _report_settings(args))
        print(f"figures in {report.parent / 'figures'}/; report: {report}")


def _train(args: argparse.Namespace) -> None:
    history = train(args.model, _data(args), out=args.out, test_data=_source(args, args.test_data),
                    weights=args.weights, num_classes=args.num_classes, normalize=args.normalize,
                    recipe=_recipe(args), resume=args.resume, device=args.device, track_every=args.track_every,
                    track_data=_source(args, args.track_data), track_vertices=args.track_vertices)
    last = history.metrics[-1] if history.metrics else {}
    summary = ", ".join(f"{k} {v:.2f}" for k, v in last.items() if k.endswith("accuracy"))
    print(f"trained {args.model} for {len(history.metrics)} epochs ({summary}); weights: {history.out / 'model.pt'}")
    if args.track_every:
        print(f"dynamics: {history.out / 'dynamics.csv'}, {history.out / 'dynamics.png'}")


def _prune(args: argparse.Namespace) -> None:
    recipe = _recipe(args)
    options = PruningOptions(
        rules=rules_with_tau(_rules(args), args.tau), curves=args.curves, target_params=args.target_params,
        target_flops=args.target_flops, equal_units=args.equal_units, reference_cuts=args.reference_cut,
        init=args.init, head_epochs=args.head_epochs, random_seeds=args.random_seeds, proxy_only=args.proxy_only,
        selection_fraction=args.selection_fraction, split_seed=args.split_seed, seeds=args.seeds)
    pruned = prune(args.folder, _source(args, args.train_data), model=args.model, data=_source(args, args.data),
                   weights=args.weights, normalize=args.normalize, points=args.convention,
                   settings=_graph_settings(args), run=_run_settings(args), test_data=_source(args, args.test_data),
                   options=options, recipe=recipe, device=args.device)
    print(pruning_markdown(pruned.rows, recipe))
    if pruned.report is None:
        print(f"table: {Path(args.folder) / 'proxy.csv'} (nothing trained, no weights written)")
    else:
        print(f"table: {Path(args.folder) / 'pruning.csv'}; report: {pruned.report}")


def _rules(args: argparse.Namespace) -> list[tuple[str, float | None]]:
    """--rule, or the default rule (plateau) where --tau is given alone: --tau sets the default rule's tau."""
    alone = args.tau is not None and not (args.target_params or args.target_flops)
    return args.rule or ([("plateau", None)] if alone else [])


def _report(args: argparse.Namespace) -> None:
    report = render_report(args.folder, _report_settings(args))
    print(f"figures in {report.parent / 'figures'}/; report: {report}")


HANDLERS: dict[str, Callable[[argparse.Namespace], None]] = {
    "demo": _demo, "models": _models, "points": _list_points, "eval": _eval, "analyze": _analyze, "train": _train,
    "prune": _prune, "report": _report, "measure": _measure, "compare": _compare,
}
"""What each subcommand of :func:`~sepgraph.cli.options.build_parser` runs."""
