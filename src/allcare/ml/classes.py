"""The seven HAM10000 classes, in the index order every model of this project uses, and the
architectures both serving and training support (ml/architectures.py builds them). Importable
without torch, which the serving process never loads with the ONNX runtime."""

CLASS_NAMES: tuple[str, ...] = ("akiec", "bcc", "bkl", "df", "mel", "nv", "vasc")
NUM_CLASSES = len(CLASS_NAMES)
ARCHITECTURES: tuple[str, ...] = ("resnet50", "efficientnet_v2_m", "mobilenet_v3_large")
