"""Benchmarks: `aftersales bench` (lifecycles against bare Temporal, many open cases,
the read model at scale) and the small scripts beside them (docs/benchmarks.md).

Nothing the worker, the web app or the scheduler runs imports this package; the CLI
imports it inside the `bench` command only.
"""
