"""Report sections, one module per construction (discovered by :mod:`verify.report`)."""
