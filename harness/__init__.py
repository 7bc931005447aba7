"""binder-harness: prove on a real kernel how the Android binder driver behaves."""

__version__ = "0.1.0"
