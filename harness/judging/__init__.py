"""Judging: cases and the context they run in, checks and verdicts."""
