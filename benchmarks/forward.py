"""Forward-pass timings of every registered family: ``python benchmarks/forward.py [--batches 1 8 64] ...``.

The same as ``tfconstruct benchmark``: seconds per forward pass, instances per second and, measured in the same
run, the ratios to the numpy reference and to one 1024^2 float64 matmul (CPU, and CUDA when present).
"""

import sys

from tfconstruct.verify.cli import main

if __name__ == "__main__":
    sys.exit(main(["benchmark", *sys.argv[1:]]))
