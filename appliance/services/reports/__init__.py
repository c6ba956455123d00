"""Exports of experiments and comparison reports across experiments."""
