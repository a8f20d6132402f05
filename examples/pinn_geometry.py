"""PDEs on holed domains and systems of PDEs: a plate with a hole and the Kovasznay flow
=========================================================================================

:mod:`hybridnet.pinn` poses problems on any geometry built from intervals, rectangles, disks
and polygons with ``|`` (union), ``&`` (intersection) and ``-`` (difference), and as systems
of several outputs with one loss term per equation. Two of DeepXDE's examples, built in with
their exact solutions:

- Helmholtz, ``-Laplacian u - k^2 u = k^2 sin(k x) sin(k y)`` with ``k = 2 pi``, on the square
  ``[-1/2, 1/2]^2`` minus a disk of radius 1/4: ``u = 0`` on the outer edges and the exact
  normal derivative on the hole's edge, with the plate's outward normal (pointing into the
  hole);
- the Kovasznay flow, steady incompressible Navier-Stokes at Re = 20 for the velocity
  ``(u, v)`` and the pressure ``p``: two momentum equations and continuity, three outputs.

The plots show prediction, exact solution and error; outside the domain is left blank.
"""

import matplotlib.pyplot as plt

from hybridnet import PINNSolver
from hybridnet.pinn import Disk, Rectangle, problems
from hybridnet.plotting import plot_solution

# %%
# The plate with a hole
# ---------------------
# The built-in problem is a composed geometry like any other: the same shape by hand is
# ``Rectangle([-0.5, -0.5], [0.5, 0.5]) - Disk([0, 0], 0.25)``. Points are drawn uniformly
# in its area, boundary points uniformly along the outer edges and the hole's circle.
plate = Rectangle([-0.5, -0.5], [0.5, 0.5]) - Disk([0.0, 0.0], 0.25)
helmholtz = problems.helmholtz_hole()
print(helmholtz.domain)
solver = PINNSolver(helmholtz, max_iter=2000, random_state=0).fit()
print(f"Helmholtz on the holed plate: relative L2 error {solver.relative_l2_error():.2e}, "
      f"{solver.fit_time_:.1f} s")
plot_solution(solver, title="Helmholtz on a plate with a hole")
plt.show()

# %%
# A flow: three outputs, three equations
# --------------------------------------
# ``predict`` returns (n, 3) and ``relative_l2_error`` one error per component; a plot shows
# one component at a time.
flow = PINNSolver(problems.kovasznay(), max_iter=2000, random_state=0).fit()
errors = flow.relative_l2_error()
print("Kovasznay flow, relative L2 error of u, v, p: "
      + ", ".join(f"{e:.2e}" for e in errors) + f" ({flow.fit_time_:.1f} s)")
for component in range(3):
    plot_solution(flow, component=component, title=f"Kovasznay flow, {'uvp'[component]}")
plt.show()
