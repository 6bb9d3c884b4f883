"""Load test of the served dashboard: concurrent Bokeh sessions that change selections.

Run ``python tests/load/run.py --help``; the modules here are its helpers.
"""
