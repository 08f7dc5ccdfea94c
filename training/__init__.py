"""BinBot training: from an image dataset (zip or folder) to an evaluated classifier."""

IMAGE_SIZE = 224
