"""Test-wide settings."""

import os

# implicit runs up to 10x slower with OpenBLAS threads inside its own workers.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
