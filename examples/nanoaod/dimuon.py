"""Example analysis: the dimuon invariant-mass spectrum, lumi by lumi, with uproot and numpy.

``run(job)`` is the callable named in task.toml. For each input file the job reads the muon branches once
and gets each of its lumis' events in turn (``job.iter_lumis``); it stops at a lumi boundary when its soft
deadline passes, and the histogram it writes covers exactly the lumis it reports as processed.

A real analysis spends CPU per event that grows with pile-up (reconstruction, combinatorics). This
example stands that cost in with a CPU-bound loop of ``DIMUON_SECONDS_PER_EVENT`` seconds per event
(default 0.004) times (pile-up / 40)^2, and, to show how autosplit copes with uneven machines, runs
1.6 times slower on one job node in four ("slow nodes").
"""

from __future__ import annotations

import hashlib
import json
import os
import time

import awkward as ak
import numpy as np

BINS = np.linspace(0.0, 150.0, 151)  # GeV
BRANCHES = ["Muon_pt", "Muon_eta", "Muon_phi", "Muon_mass", "Muon_charge"]


def dimuon_masses(arrays) -> np.ndarray:
    """Invariant masses (GeV) of opposite-charge muon pairs in events with exactly two muons."""
    muons = ak.zip({name.removeprefix("Muon_"): arrays[name] for name in BRANCHES})
    pairs = muons[ak.num(muons) == 2]
    pairs = pairs[pairs.charge[:, 0] != pairs.charge[:, 1]]
    mu1, mu2 = pairs[:, 0], pairs[:, 1]
    px = mu1.pt * np.cos(mu1.phi) + mu2.pt * np.cos(mu2.phi)
    py = mu1.pt * np.sin(mu1.phi) + mu2.pt * np.sin(mu2.phi)
    pz = mu1.pt * np.sinh(mu1.eta) + mu2.pt * np.sinh(mu2.eta)
    e1 = np.sqrt((mu1.pt * np.cosh(mu1.eta)) ** 2 + mu1.mass**2)
    e2 = np.sqrt((mu2.pt * np.cosh(mu2.eta)) ** 2 + mu2.mass**2)
    return ak.to_numpy(np.sqrt(np.maximum((e1 + e2) ** 2 - px**2 - py**2 - pz**2, 0.0)))


def burn_cpu(seconds: float) -> None:
    """Spend ``seconds`` of CPU time (the stand-in for reconstruction work)."""
    end = time.process_time() + seconds
    x = np.ones(2048)
    while time.process_time() < end:
        x = np.sqrt(x * 1.0001 + 1e-3)


def run(job) -> None:
    seconds_per_event = float(os.environ.get("DIMUON_SECONDS_PER_EVENT", "0.004"))
    slow_node = int(hashlib.sha256(job.spec.job_id.encode()).hexdigest(), 16) % 4 == 0
    histogram = np.zeros(BINS.size - 1)
    for unit, arrays in job.iter_lumis(BRANCHES, library="ak"):
        pileup = float(unit.features.get("pileup") or 40.0)
        burn_cpu(len(arrays) * seconds_per_event * (pileup / 40.0) ** 2 * (1.6 if slow_node else 1.0))
        histogram += np.histogram(dimuon_masses(arrays), bins=BINS)[0]
    out = job.output_path("dimuon_mass.json")
    out.write_text(json.dumps({"bins_gev": BINS.tolist(), "counts": histogram.tolist()}))
    job.add_output(out)
