"""The `uncia` command line: a thin layer on top of the pipeline and the dashboard, one module
per group of subcommands.
"""
