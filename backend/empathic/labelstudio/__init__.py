"""The Label Studio adapter: the ML-backend server, label mapping, regions, cache and media fetching.

Everything that knows about Label Studio, Flask or Redis lives in this package; the analysis core
never imports it.
"""
