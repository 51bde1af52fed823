"""The seven HAM10000 classes, in the index order every model of this project uses, and the
architectures both serving and training support (ml/architectures.py builds them). Importable
without torch, which the serving process never loads with the ONNX runtime."""

CLASS_NAMES: tuple[str, ...] = ("akiec", "bcc", "bkl", "df", "mel", "nv", "vasc")
NUM_CLASSES = len(CLASS_NAMES)
ARCHITECTURES: tuple[str, ...] = (
    "efficientnet_lite0",
    "resnet50",
    "efficientnet_v2_m",
    "mobilenet_v3_large",
)
# Architectures with ImageNet weights installed with the server (ml/pretrained.py): the default
# start of a first model.
PRETRAINED: tuple[str, ...] = ("efficientnet_lite0",)
DEFAULT_ARCHITECTURE = "efficientnet_lite0"
# The one vocabulary of architecture names: the ids above, and the legacy aliases the admin
# screen's trigger accepted (contract 2.28), in any case.
ARCHITECTURE_ALIASES = {
    "efficientnet": "efficientnet_v2_m",
    "resnet": "resnet50",
    "mobilenet": "mobilenet_v3_large",
    "mobilenet_v3": "mobilenet_v3_large",
    "efficientnet_lite": "efficientnet_lite0",
    "efficientnet-lite0": "efficientnet_lite0",
}


def architecture_id(name: str) -> str | None:
    """The architecture a name means, or None if no servable one."""
    key = name.strip().lower()
    key = ARCHITECTURE_ALIASES.get(key, key)
    return key if key in ARCHITECTURES else None
