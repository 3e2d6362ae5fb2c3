"""The training loops: DINO pre-training, the fine-tuning runs, and what both share
(parameter groups, clipping, distributed setup, the metrics log, the collapse verdict)."""
