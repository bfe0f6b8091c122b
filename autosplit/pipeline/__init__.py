"""The CRAB-like pipeline built on the library: job wrapper, postjob, stage-out, submit, status, report."""
