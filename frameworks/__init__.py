"""Frameworks that ship with mesoslite."""
