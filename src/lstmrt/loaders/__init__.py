"""Conversion of framework models and checkpoints to lstmrt layer specs. One module per source format."""
