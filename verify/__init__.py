"""Reference algorithms, hypothesis strategies, comparison harness, sweeps, plots and the CLI."""
