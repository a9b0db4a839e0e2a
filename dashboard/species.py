"""Other animals and people as map layers, from the ImageNet labels a zero-shot model stores.

These are zero-shot label groupings, not identifications: a frame counts for a group when its
top-1 ImageNet label is one of the group's labels. ImageNet has no "ibex herd" or "herder"
class, so the groups collect the nearest classes (a domestic ram for a blue sheep, an ox for a
yak). Treat the layers as hints about where prey, livestock and people pass.
"""

from __future__ import annotations

from enum import StrEnum


class Layer(StrEnum):
    """What the map counts: leopards (independent events) or one group of other frames."""

    LEOPARD = "leopard"
    PREY = "prey"
    LIVESTOCK = "livestock"
    PEOPLE = "people"


LAYER_LABELS: dict[Layer, str] = {
    Layer.LEOPARD: "Snow leopards",
    Layer.PREY: "Ibex & wild prey",
    Layer.LIVESTOCK: "Livestock",
    Layer.PEOPLE: "People & vehicles",
}

# ImageNet-1k class names (as the models store them) per group.
LABEL_GROUPS: dict[Layer, tuple[str, ...]] = {
    Layer.PREY: (
        "ibex",
        "bighorn",
        "mountain goat",
        "hartebeest",
        "impala",
        "gazelle",
        "hare",
        "wood rabbit",
        "marmot",
    ),
    Layer.LIVESTOCK: (
        "ram",
        "ox",
        "water buffalo",
        "bison",
        "sorrel",
        "Arabian camel",
        "llama",
        "hog",
        "Old English sheepdog",
        "komondor",
    ),
    Layer.PEOPLE: (
        "scuba diver",
        "groom",
        "ballplayer",
        "jeep",
        "pickup",
        "motor scooter",
        "mountain bike",
        "cowboy hat",
        "backpack",
        "poncho",
        "jean",
        "sweatshirt",
    ),
}


def labels_of(layer: Layer) -> list[str]:
    """The ImageNet labels counted for `layer` (empty for the leopard layer)."""
    return list(LABEL_GROUPS.get(Layer(layer), ()))


