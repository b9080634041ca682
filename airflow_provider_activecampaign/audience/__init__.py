"""Audience logic in plain Python: emails, row mapping, batching, run state and the sync engine.

Nothing in this package imports Airflow, so it can be used and tested on its own.
"""
