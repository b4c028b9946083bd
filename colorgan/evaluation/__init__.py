"""Scoring finished runs and other tools' outputs; colorizing photos."""
