"""The 1000 ImageNet-1k class names, in the order of a classifier's outputs.

The names come from torchvision at call time, so there is no copied list to drift out of step.
"""

from __future__ import annotations

from pipeline.errors import ModelError

SNOW_LEOPARD_CLASS = 289  # "snow leopard, ounce, Panthera uncia" in ImageNet-1k


def imagenet_class_names() -> tuple[str, ...]:
    """Return the 1000 ImageNet-1k class names, index i naming output i of an ImageNet head."""
    # torchvision keeps the list in a private module; importing it here (not at import time of
    # the package) keeps `import pipeline` light and fails only where the names are needed.
    from torchvision.models._meta import _IMAGENET_CATEGORIES

    names = tuple(_IMAGENET_CATEGORIES)
    if len(names) != 1000:  # a torchvision upgrade that changed the list must not mislabel
        raise ModelError(f"torchvision lists {len(names)} ImageNet classes, expected 1000")
    return names
