"""Batch tools around the detectors: compare, replay, simulate, tail, file sources, plots."""
