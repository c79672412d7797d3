"""Generators: fit on a training Batch, propose candidates, save and load state."""
