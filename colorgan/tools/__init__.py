"""Maintenance tools: mutation testing, building and checking voc-mini."""
