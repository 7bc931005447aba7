"""The binder-harness case catalog (DESIGN §4). Each module is one family."""
