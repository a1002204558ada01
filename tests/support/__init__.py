"""Shared test support: fakes, process helpers and the one pair of wait helpers."""
