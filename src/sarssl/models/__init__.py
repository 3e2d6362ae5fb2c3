"""The networks and what they save: the timm backbone, DINO's head and loss, the
segmentation models of the fine-tuning grid, the last block's CLS attention, and the
record a pre-training's checkpoint holds."""
