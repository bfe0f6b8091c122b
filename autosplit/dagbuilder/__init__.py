"""DAG files and submit descriptions for the pipeline's stages.

DAG text is written by :mod:`autosplit.dagbuilder.dagfile` (plain text: ``htcondor2.dags`` names nodes
``layer:index``, routes many-to-one edges through join nodes and does not write FINAL submit files, none
of which fit node names like ``job-17`` and a FINAL finalize node); submit descriptions are
``htcondor2.Submit`` objects (:mod:`autosplit.dagbuilder.submit`).
"""

from autosplit.dagbuilder.dagfile import DagFile, DagNode, check_node_name
from autosplit.dagbuilder.submit import hard_limit_expression, job_submit

__all__ = ["DagFile", "DagNode", "check_node_name", "hard_limit_expression", "job_submit"]
