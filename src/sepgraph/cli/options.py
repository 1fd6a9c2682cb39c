"""The command line's arguments: one table per subcommand, and the option groups several share."""

from __future__ import annotations

import argparse
from dataclasses import fields

from .._version import __version__
from ..data.dataset import NORMALIZATIONS
from ..devices import parse_memory
from ..errors import SepgraphError
from ..graph.gemm import DEFAULT_GEMM, GEMM_CHOICES
from ..models.points import CONVENTIONS
from ..pruning.criterion import CRITERIA, PAPER_CURVES, RULES, check_criteria, check_rule
from ..report.html import FORMATS
from ..settings import VERTEX_CHOICES, GraphSettings, RunSettings
from ..training.precision import MEMORY_FORMATS, PRECISIONS
from ..training.recipe import SCHEDULES, Recipe


def build_parser() -> argparse.ArgumentParser:
    """The whole command line: one subcommand per library call (each names its handler in ``command``)."""
    parser = argparse.ArgumentParser(
        prog="sepgraph", description="Show how a trained CNN separates classes, layer by layer."
    )
    parser.add_argument("--version", action="version", version=f"sepgraph {__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks and debug logging")
    parser.add_argument("--quiet", action="store_true", help="no progress: live bars on a terminal, one line per "
                        "epoch or stage in a file or pipe, otherwise")
    commands = parser.add_subparsers(title="commands", required=True, metavar="COMMAND")
    _demo_command(commands)
    _models_command(commands)
    _points_command(commands)
    _eval_command(commands)
    _analyze_command(commands)
    _measure_command(commands)
    _compare_command(commands)
    _train_command(commands)
    _prune_command(commands)
    _report_command(commands)
    return parser


def _demo_command(commands: argparse._SubParsersAction) -> None:
    demo = commands.add_parser("demo", help="train, analyse, prune and report on embedded digits (no download)")
    demo.add_argument("--out", default="results/demo", help="results folder, replaced (default: results/demo)")
    demo.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N (default: auto)")
    demo.add_argument("--precision", choices=PRECISIONS, default="fp32",
                      help="arithmetic of the training steps (default: fp32; bf16 where native)")
    demo.set_defaults(command="demo")


def _models_command(commands: argparse._SubParsersAction) -> None:
    models = commands.add_parser("models", help="list the model zoo with parameter and layer-point counts")
    models.add_argument("--pattern", default="*", help="shell-style filter on names (default: all)")
    models.set_defaults(command="models")


def _points_command(commands: argparse._SubParsersAction) -> None:
    points = commands.add_parser("points", help="list a model's layer points and their feature shapes")
    points.add_argument("model", help="zoo name, torchvision:NAME or timm:NAME")
    _add_point_options(points)
    points.add_argument("--input-size", type=int, help="input height and width (default: the model's)")
    points.add_argument("--num-classes", type=int, default=10, help="head size (default: 10)")
    points.set_defaults(command="points")


def _eval_command(commands: argparse._SubParsersAction) -> None:
    evaluation = commands.add_parser("eval", help="accuracy of a checkpoint on a dataset")
    _add_model_options(evaluation)
    _add_data_options(evaluation)
    evaluation.add_argument("--batch-size", type=int, default=256, help="images per forward pass (default: 256)")
    evaluation.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N (default: auto)")
    evaluation.add_argument("--json", action="store_true", help="print the result as JSON")
    evaluation.set_defaults(command="eval")


def _analyze_command(commands: argparse._SubParsersAction) -> None:
    analysis = commands.add_parser("analyze", help="histograms, subgraphs, M and Lu et al.'s Q at every layer point")
    _add_model_options(analysis)
    _add_data_options(analysis)
    _add_point_options(analysis)
    _add_graph_options(analysis)
    group = _add_run_options(analysis, batch_size=True)
    group.add_argument("--out", default="results/analysis", help="results folder (default: results/analysis)")
    group.add_argument("--resume", action="store_true", help="continue an interrupted analysis in --out")
    group.add_argument("--overwrite", action="store_true", help="replace what --out holds")
    group.add_argument("--no-report", action="store_true", help="skip the figures and report.html")
    group.add_argument("--timeout", type=_positive_seconds, default=600.0,
                     help="under torchrun: seconds a collective operation waits for the other processes before the "
                          "job stops (default: 600)")
    _add_report_options(analysis)
    analysis.set_defaults(command="analyze")


def _measure_command(commands: argparse._SubParsersAction) -> None:
    measure = commands.add_parser("measure", help="the same measures of features you already have (SPEC 24)")
    measure.add_argument("features", help="an .npz file with one (N, D) or (N, C, H, W) array per layer point, in "
                         "network order, or a folder of .npy files (a leading 000_ orders them, 2 before 10)")
    measure.add_argument("--labels", required=True, help=".npy file of the N samples' integer classes, in the "
                         "features' row order")
    measure.add_argument("--points", help="comma-separated network order of the points when the files' order is not "
                         "it (it may leave points out)")
    measure.add_argument("--classes", help="comma-separated class names (default: their numbers)")
    measure.add_argument("--description", default="the labelled samples", help="how the report names the samples")
    _add_graph_options(measure)
    _add_folder_options(measure, "results/measure", "measurement")
    _add_report_options(measure)
    measure.set_defaults(command="measure")


def _compare_command(commands: argparse._SubParsersAction) -> None:
    compare = commands.add_parser("compare", help="two models on the same vertices: model x model CKA heatmap and "
                                  "both modularity curves (SPEC 24)")
    compare.add_argument("model_a", help="the first model: zoo name, torchvision:NAME or timm:NAME")
    compare.add_argument("model_b", help="the second model")
    compare.add_argument("--weights-a", help="checkpoint of the first model")
    compare.add_argument("--weights-b", help="checkpoint of the second model")
    compare.add_argument("--num-classes", type=int, help="head size of both (default: the dataset's classes)")
    _add_data_options(compare)
    compare.add_argument("--data-b", help="the second model's data spec, when it reads the same images another way "
                         "(default: --data); its images and labels must be the same")
    compare.add_argument("--normalize-b", choices=list(NORMALIZATIONS),
                         help="the second model's normalisation (default: --normalize)")
    _add_point_options(compare)
    _add_graph_options(compare)
    _add_folder_options(compare, "results/compare", "comparison", batch_size=True)
    _add_report_options(compare)
    compare.set_defaults(command="compare")


def _add_folder_options(parser: argparse.ArgumentParser, default: str, what: str, batch_size: bool = False) -> None:
    """How a measurement or comparison runs and where its folder goes."""
    group = _add_run_options(parser, batch_size=batch_size)
    group.add_argument("--out", default=default, help=f"results folder (default: {default})")
    group.add_argument("--resume", action="store_true", help=f"continue an interrupted {what} in --out")
    group.add_argument("--overwrite", action="store_true", help="replace what --out holds")
    group.add_argument("--no-report", action="store_true", help="skip the figures and the report")


def _train_command(commands: argparse._SubParsersAction) -> None:
    training = commands.add_parser("train", help="train a zoo model with the paper's recipe (SPEC 10)")
    _add_model_options(training)
    training.add_argument("--data", default="digits:train", help="training data (default: digits:train)")
    training.add_argument("--test-data", help="data to report test accuracy on after every epoch")
    training.add_argument("--normalize", default="cifar10", choices=list(NORMALIZATIONS),
                          help="per-channel normalisation (default: cifar10)")
    training.add_argument("--data-root", default="data", help="where torchvision datasets live (default: ./data)")
    add_column_options(training)
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
    training.set_defaults(command="train")


def _prune_command(commands: argparse._SubParsersAction) -> None:
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
    add_column_options(prune)
    prune.add_argument("--rule", action="append", type=_rule,
                       help="Criterion I rule, RULE or RULE=TAU, repeatable: plateau and peak truncate, delta and "
                       "delta-abs remove units (SPEC 8; default: plateau, none when a target is given)")
    prune.add_argument("--target-params", action="append", type=float, default=[], metavar="P",
                       help="also cut each criterion's units, lowest score first, until P%% of the parameters is "
                       "saved (repeatable; SPEC 19)")
    prune.add_argument("--target-flops", action="append", type=float, default=[], metavar="P",
                       help="the same until P%% of the FLOPs of one image is saved (repeatable)")
    prune.add_argument("--random-seeds", type=int, default=3, metavar="K",
                       help="with 'random' among --curves: K random cuts per cut they match, the same units per "
                       "size class (default: 3)")
    prune.add_argument("--seeds", type=int, default=1, metavar="K",
                       help="train every row K times, seeds --seed, --seed + 1, ...; a rerun with a larger K trains "
                       "only the new seeds; tables show mean and spread (SPEC 20; default: 1)")
    prune.add_argument("--selection-fraction", type=float, default=0.5, metavar="F",
                       help="share of each class of --model's --data that the analysis choosing the cuts sees; "
                       "accuracies are reported on the rest (SPEC 21; default: 0.5)")
    prune.add_argument("--split-seed", type=int, default=0, help="seed of the selection/report split (default: 0)")
    prune.add_argument("--proxy-only", action="store_true",
                       help="train nothing: each cut's size and accuracy after batch-norm recalibration alone, in "
                       "proxy.csv and proxy.md; no weights written")
    prune.add_argument("--tau", type=float, help="the parameter of rules given without one (default: 0.02 plateau "
                       "and delta, 0.03 delta-abs)")
    prune.add_argument("--curves", type=_curves, default=PAPER_CURVES, metavar="CURVE,...",
                       help=f"criteria to cut by, one pruned model each per rule: {', '.join(CRITERIA)} "
                       "(default: M,lu_q; SPEC 16, 19, 22; magnitude, ablation and block_influence are unit scores "
                       "and angular a distance per run of units, cut by the target rules only; random draws "
                       "size-matched cuts beside every other criterion's)")
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
    prune.set_defaults(command="prune")


def _report_command(commands: argparse._SubParsersAction) -> None:
    report = commands.add_parser("report", help="(re)render figures and report.html of a results folder")
    report.add_argument("folder", help="a results folder written by 'sepgraph analyze'")
    _add_report_options(report)
    report.set_defaults(command="report")


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
    group = parser.add_argument_group("run")
    group.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N (default: auto)")
    group.add_argument("--max-memory", type=_memory,
                     help="bytes of features held at once, e.g. 2G (default: a quarter of RAM, at most 2G, "
                          "or one layer point's features if larger and within half of RAM)")
    group.add_argument("--spill-dir", help="one forward pass for all points, their features streamed to a temporary "
                     "folder here and read back one point at a time (needs disk for all of them; default: one pass "
                     "per group of points that fits --max-memory)")
    group.add_argument("--tile-rows", type=int, help="rows of a similarity tile (default: 1024 on the CPU, 4096 on "
                     "CUDA); runs across any number of processes give the same bytes at the same tile rows")
    group.add_argument("--gemm", choices=GEMM_CHOICES, default=DEFAULT_GEMM,
                       help="engine of the similarity products: torch's BLAS, numpy's OpenBLAS (CPU), or auto, a "
                            "fixed rule per machine (SPEC 3; default: auto)")
    if batch_size:
        group.add_argument("--batch-size", dest="forward_batch_size", type=int, default=RunSettings.batch_size,
                         help=f"images per forward pass (default: {RunSettings.batch_size})")
    else:
        parser.set_defaults(forward_batch_size=RunSettings.batch_size)
    return group


def _curves(text: str) -> tuple[str, ...]:
    try:
        return check_criteria([curve.strip() for curve in text.split(",") if curve.strip()])
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
    group.add_argument("--schedule", default=defaults.schedule, choices=SCHEDULES,
                       help="the lr's course: step (the paper's milestones) or cosine (to 0 over --epochs, for short "
                       "fine-tuning; SPEC 10; default: step)")
    group.add_argument("--no-augment", action="store_true", help="no random crop and flip")
    group.add_argument("--precision", choices=PRECISIONS, default="fp32",
                       help="arithmetic of a training step: fp32, or bf16 autocast where the processor or GPU "
                            "computes bf16 natively (default: fp32)")
    group.add_argument("--memory-format", choices=tuple(MEMORY_FORMATS), default="channels_last",
                       help="layout of a training step's tensors; which is faster depends on the model and the "
                            "processor (default: channels_last)")
    group.add_argument("--seed", type=int, default=0,
                       help="seed of shuffling, augmentation, init and vertex choice (default: 0)")


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
                        help="digits[:test|train|all], cifar10[:test|train], npz:PATH, imagefolder:PATH, "
                        "py:MODULE:FUNCTION (a function returning a torch Dataset of (image tensor, label), its own "
                        "transform) or hf:PATH[:SPLIT] (a Hugging Face dataset saved to disk) (default: digits)")
    parser.add_argument("--normalize", default="cifar10", choices=list(NORMALIZATIONS),
                        help="per-channel normalisation after scaling to [0, 1] (default: cifar10)")
    parser.add_argument("--data-root", default="data", help="where torchvision datasets live (default: ./data)")
    parser.add_argument("--download", action="store_true", help="allow torchvision to download the dataset")
    parser.add_argument("--image-size", type=int, help="resize and centre-crop imagefolder images to this size")
    add_column_options(parser)


def add_column_options(parser: argparse.ArgumentParser) -> None:
    """The columns an hf: dataset's images and labels are read from."""
    parser.add_argument("--image-column", default="image", help="an hf: dataset's image column (default: image)")
    parser.add_argument("--label-column", default="label", help="an hf: dataset's label column (default: label)")


def _add_point_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--convention", default="paper", choices=CONVENTIONS, help="layer-point convention (SPEC 1)")
    parser.add_argument("--points", help="comma-separated module names (name or name:k), instead of a convention")
