"""Forward-pass timings of every registered family: ``python benchmarks/forward.py [--tokens 100 1000 10000] ...``.

The same as ``tfconstruct benchmark``: seconds per forward pass (factored and dense), the numpy reference's seconds
on the same instances, and the achieved GFLOP/s against a float64 matmul measured in the same run (CPU, and CUDA
when present).
"""

import sys

from tfconstruct.verify.cli import main

if __name__ == "__main__":
    sys.exit(main(["benchmark", *sys.argv[1:]]))
