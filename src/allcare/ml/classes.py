"""The seven HAM10000 classes, in the index order every model of this project uses."""

CLASS_NAMES: tuple[str, ...] = ("akiec", "bcc", "bkl", "df", "mel", "nv", "vasc")
NUM_CLASSES = len(CLASS_NAMES)
