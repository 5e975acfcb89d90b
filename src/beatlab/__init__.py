"""beatlab: build, train, hypertune, evaluate and report ECG heartbeat classifiers."""

__version__ = "0.1.0"

CLASSES: tuple[str, ...] = ("N", "S", "V", "F", "Q")
"""The AAMI EC57 heartbeat classes, in label order 0..4 (as in the Kaggle/course files)."""

BEAT_LENGTH = 187
"""Samples per beat at 125 Hz, after Kachuee et al. 2018."""
