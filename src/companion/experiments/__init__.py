"""From a scale profile to the runs: profiles, run specs, the λ/β and SGD searches, the two
training stages, sweeps and their cost."""
