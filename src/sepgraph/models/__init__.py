"""The model zoo (SPEC 11): CIFAR ResNets, VGG-bn and MobileNetV2 built by name, their layer points (SPEC 1),
their surgery (SPEC 9) and safe checkpoints.

Modules: :mod:`.registry` (names), :mod:`.factory` (build by name, pruned names included), one module per
family, :mod:`.protocol` (:class:`ZooModel`: what a zoo model says about itself), :mod:`.points` (conventions
and discovery), :mod:`.capture` (forward hooks at points), :mod:`.surgery` (the families' shared helpers),
:mod:`.pruned` (the ``+truncate`` / ``+remove`` grammar and operations), :mod:`.size` (parameters, FLOPs),
:mod:`.checkpoints` (``weights_only=True`` loading).
"""

from . import resnet, cifar_resnet, vgg, mobilenet  # noqa: F401, I001  (registers the zoo in this order)
from .factory import BuiltModel, build_model, create_model
from .protocol import LayerPoint, RemovableUnit, ZooModel
from .pruned import PruningSpec
from .registry import ModelInfo, input_size, list_models, model_info, register_model
from .size import flop_count, parameter_count

__all__ = ["BuiltModel", "LayerPoint", "ModelInfo", "PruningSpec", "RemovableUnit", "ZooModel", "build_model",
           "create_model", "flop_count", "input_size", "list_models", "model_info", "parameter_count",
           "register_model"]
