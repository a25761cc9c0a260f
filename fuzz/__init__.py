"""Fuzz targets and their runner (see fuzz_parsers.py)."""
