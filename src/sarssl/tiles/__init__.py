"""The training input: tiles read from the Zarr stores (normalisation, data sets, the step
order of a run), DINO's multi-crop views and their SAR photometric augmentation."""
