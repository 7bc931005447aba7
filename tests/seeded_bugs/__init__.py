"""Deliberately broken binder_linux.ko builds that the harness must catch."""
