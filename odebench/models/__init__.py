"""Eps models: analytic problems (``problem.eps``), wrapped torch networks, shipped networks,
and ``from_prediction`` for models that predict x0, v, a velocity or an EDM denoiser.

``NetworkModel`` wraps any ``net(x, time) -> eps`` with its declared time input; ``load``
returns a shipped (or any carded) network; ``load_diffusers`` a local diffusers UNet or
diffusion transformer (DiT, SD3);
``load_digits_classifier`` the shipped digits classifier whose features give the FID-like
Frechet distance of the quality study.
"""

from .classifier import DigitsClassifier, digits_features, load_digits_classifier
from .diffusers_unet import load_diffusers, load_diffusers_unet, tiny_unet2d
from .loading import ARCHITECTURES, apply_state_dict, load, load_state_dict, shipped
from .network import TIME_INPUTS, NetworkModel
from .prediction import KINDS as PREDICTIONS
from .prediction import PredictionModel, from_prediction

__all__ = [
    "ARCHITECTURES",
    "PREDICTIONS",
    "TIME_INPUTS",
    "DigitsClassifier",
    "NetworkModel",
    "PredictionModel",
    "apply_state_dict",
    "digits_features",
    "from_prediction",
    "load",
    "load_diffusers",
    "load_diffusers_unet",
    "load_digits_classifier",
    "load_state_dict",
    "shipped",
    "tiny_unet2d",
]
