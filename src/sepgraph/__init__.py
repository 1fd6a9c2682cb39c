"""sepgraph: how a trained CNN separates classes, layer by layer.

The data's way through the package, one floor per folder, each importing only the floors below it:
the ground floor (errors, devices, files, settings) -> :mod:`.models` -> :mod:`.data` -> :mod:`.graph` ->
:mod:`.training`, :mod:`.results`, :mod:`.parallel` -> :mod:`.analysis` -> :mod:`.pruning` -> :mod:`.report`
-> :mod:`.reproduction` -> :mod:`.verbs` -> :mod:`.cli`. The names below are the public API.
"""

import importlib.util
import os
import warnings

if importlib.util.find_spec("torch") is None:  # checked without importing it: MKL_CBWR must be set first
    raise ImportError("sepgraph needs PyTorch, which is not installed in this Python: pip install 'torch>=2.1' "
                      "'torchvision>=0.16' (on these machines torch==2.14.1 torchvision==0.29.1 install from local "
                      "disk; other builds: https://pytorch.org/get-started/locally/)")

# Intel MKL's strict reproducible mode: matrix products give the same floats whatever the number of threads, so one
# process and K processes of one thread each compute the same similarities (SPEC 18). Read at MKL's first call,
# which devices.mkl_strict below makes where torch has not multiplied yet.
os.environ.setdefault("MKL_CBWR", "AUTO,STRICT")

from ._version import __version__  # noqa: E402
from .analysis.compare import ModelComparison, compare
from .analysis.features import PointFeatures, extract_features
from .analysis.run import Analysis, analyze, measure
from .data.dataset import ImageDataset
from .data.protocol import LabelledImages
from .data.samples import select_vertices
from .data.sources import DataSource, load_dataset
from .data.user import TorchDataset
from .devices import keep_freed_memory, mkl_strict
from .errors import SepgraphError
from .models import (
    BuiltModel,
    LayerPoint,
    PruningSpec,
    ZooModel,
    build_model,
    create_model,
    list_models,
    parameter_count,
)
from .models.checkpoints import load_weights, read_state_dict, save_weights
from .models.points import layer_points
from .pruning.halves import analyse_selection
from .pruning.options import PruningOptions
from .pruning.rows import PruningPlan, compare_pruning, plan_pruning
from .pruning.table import PruningRow, pruning_markdown
from .report.html import ReportSettings, render_comparison, render_report
from .results.folder import load_results
from .results.layer_row import LayerRow
from .results.manifest import Manifest
from .settings import GraphSettings, RunSettings
from .training.evaluation import Evaluation, evaluate
from .training.recipe import Recipe
from .verbs import Pruned, prune, train

keep_freed_memory()  # activations reuse freed memory instead of faulting in fresh pages; no number changes
if mkl_strict() is False:
    warnings.warn("torch's MKL multiplied before sepgraph was imported, outside its strict reproducible mode, so its "
                  "products may differ with the number of threads (recorded in results as 'mkl (not strict)'); set "
                  "MKL_CBWR=AUTO,STRICT in the environment, or import sepgraph before torch multiplies",
                  RuntimeWarning, stacklevel=2)

__all__ = [
    "__version__", "Analysis", "BuiltModel", "DataSource", "Evaluation", "GraphSettings", "ImageDataset",
    "LabelledImages", "LayerPoint", "LayerRow", "Manifest", "ModelComparison", "PointFeatures", "Pruned",
    "PruningOptions", "PruningPlan", "PruningRow", "PruningSpec", "Recipe", "ReportSettings", "RunSettings",
    "SepgraphError", "TorchDataset", "ZooModel", "analyse_selection", "analyze", "build_model", "compare",
    "compare_pruning", "create_model", "evaluate", "extract_features", "layer_points", "list_models",
    "load_dataset", "load_results", "load_weights", "measure", "parameter_count", "plan_pruning", "pruning_markdown",
    "prune", "read_state_dict", "render_comparison", "render_report", "save_weights", "select_vertices", "train",
]
