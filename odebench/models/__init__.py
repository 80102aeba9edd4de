"""Eps models: analytic problems (``problem.eps``), wrapped torch networks, shipped networks.

``NetworkModel`` wraps any ``net(x, time) -> eps`` with its declared time input; ``load``
returns a shipped (or any carded) network; ``load_diffusers_unet`` a local UNet2DModel;
``load_digits_classifier`` the shipped digits classifier whose features give the FID-like
Frechet distance of the quality study.
"""

from .classifier import DigitsClassifier, digits_features, load_digits_classifier
from .diffusers_unet import load_diffusers_unet
from .loading import ARCHITECTURES, apply_state_dict, load, load_state_dict, shipped
from .network import TIME_INPUTS, NetworkModel

__all__ = [
    "ARCHITECTURES",
    "TIME_INPUTS",
    "DigitsClassifier",
    "NetworkModel",
    "apply_state_dict",
    "digits_features",
    "load",
    "load_diffusers_unet",
    "load_digits_classifier",
    "load_state_dict",
    "shipped",
]
