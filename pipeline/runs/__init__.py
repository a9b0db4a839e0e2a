"""Runs: the orchestrators that chain stages into a resumable job over a store (the survey
run, localize and identify runs, the Spark engine) and the simulated demo survey.
"""
