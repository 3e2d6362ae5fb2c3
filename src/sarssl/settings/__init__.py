"""The border between the configuration and the code, without torch: the settings of every
job (pre-training, probe, fine-tuning, separability), the one Config object that the
workflow and the command line read a config through, and the checks of a config. The
Snakefile's parse imports only this layer (and the torch-free data half)."""
