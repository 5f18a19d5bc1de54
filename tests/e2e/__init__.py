"""End-to-end tests: the product started as a user starts it (``python run.py ...``), driven from outside."""
