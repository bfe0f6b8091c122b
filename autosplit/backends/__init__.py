"""Backends that execute DAG files: ``local`` (embedded DAGMan-compatible executor) and ``condor``."""
