"""Analysis: reports and policy comparison, computed from traces alone.

Figures come out the same wherever cosim runs: files only (Agg), and Matplotlib's own defaults,
not a ``matplotlibrc`` found in the working folder, ``MATPLOTLIBRC`` or the user's config."""

import matplotlib

matplotlib.use("Agg")
matplotlib.rcdefaults()
