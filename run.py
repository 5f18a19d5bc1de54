#!/usr/bin/env python3
"""Command line: ``python run.py [serve|worker|migrate|demo|…|bench]`` (serve is the default; ``--help`` lists all).
The commands are in :mod:`scrm.app.cli`."""

import sys

from scrm.app.cli import main

if __name__ == "__main__":
    sys.exit(main())
