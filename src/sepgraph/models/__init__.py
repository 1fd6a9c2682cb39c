"""The model zoo (SPEC 11): CIFAR ResNets, VGG-bn and MobileNetV2, built by name."""

from . import resnet, cifar_resnet, vgg, mobilenet  # noqa: F401, I001  (registers the zoo in this order)
from .factory import BuiltModel, build_model, create_model
from .registry import ModelInfo, input_size, list_models, model_info, parameter_count, register_model

__all__ = ["BuiltModel", "ModelInfo", "build_model", "create_model", "input_size", "list_models", "model_info",
           "parameter_count", "register_model"]
