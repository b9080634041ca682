"""Triggers: the deferrable half of the sensors, run by Airflow's triggerer."""
