"""jlis: a runnable implementation of the J-LIS information systems for local government."""

__version__ = "0.1.0"
