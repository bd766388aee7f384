"""Reference algorithms in numpy, step by step, independent of the constructions."""
