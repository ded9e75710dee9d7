"""fastnn: small dense neural networks on the CPU, fast, with a drop-in NumPy coursework API."""

__version__ = "0.1.0"
