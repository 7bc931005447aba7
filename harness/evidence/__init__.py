"""Evidence from the target: the native probe's output, kernel traces, binder's debugfs files."""
