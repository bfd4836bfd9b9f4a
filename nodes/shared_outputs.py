"""The output bundles that nodes in several modules return; the registry finds no nodes here."""

from __future__ import annotations

from engine.node import Outputs
from nodes.sd.values import Image, Latent, UNetModel


class LatentOut(Outputs):
    latent: Latent


class ImageOut(Outputs):
    image: Image


class ModelOut(Outputs):
    model: UNetModel
