"""Verifiers: accept or reject candidate samples."""
