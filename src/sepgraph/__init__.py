"""sepgraph: how a trained CNN separates classes, layer by layer.

The data's way through the package: model (:mod:`sepgraph.models`) -> layer points
(:mod:`sepgraph.points`) -> features (:mod:`sepgraph.features`) -> similarity graphs
and modularity -> where to cut -> pruning -> results and report.
"""

import os

# Intel MKL's strict reproducible mode: matrix products give the same floats whatever the number of threads, so one
# process and K processes of one thread each compute the same similarities (SPEC 18). Read at MKL's first product.
os.environ.setdefault("MKL_CBWR", "AUTO,STRICT")

from ._version import __version__  # noqa: E402
from .analysis import Analysis, analyze
from .checkpoints import load_weights, read_state_dict, save_weights
from .data import DataSource, ImageDataset, load_dataset
from .errors import SepgraphError
from .evaluation import Evaluation, evaluate
from .features import PointFeatures, extract_features
from .layer_row import LayerRow
from .models import BuiltModel, build_model, create_model, list_models, parameter_count
from .points import LayerPoint, layer_points
from .samples import select_vertices
from .settings import GraphSettings, RunSettings

__all__ = [
    "__version__", "Analysis", "BuiltModel", "DataSource", "Evaluation", "GraphSettings", "ImageDataset", "LayerPoint",
    "LayerRow", "PointFeatures", "RunSettings", "SepgraphError", "analyze", "build_model", "create_model", "evaluate",
    "extract_features", "layer_points", "list_models", "load_dataset", "load_weights", "parameter_count",
    "read_state_dict", "save_weights", "select_vertices",
]
