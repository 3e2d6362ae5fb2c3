"""Scores of a representation: MIoU and confusion, the k-NN probe, the separability of the
classes in the inputs, emergent segmentation, and the attention maps of every tile."""
