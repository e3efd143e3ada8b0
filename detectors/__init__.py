"""Pure ML detectors for bylinecheck.

Nothing in this package imports from ``service``, reads the environment, or knows about HTTP or
databases. Every detector follows the contract in :mod:`detectors.contract`.
"""
