"""Solving PDEs with PINNSolver: first-order and without back-propagation
=======================================================================

:class:`~hybridnet.PINNSolver` trains a physics-informed network on a problem built from a
domain, a residual and conditions (:mod:`hybridnet.pinn`). Two built-in problems, each with
its exact solution:

- 2-D Poisson, ``Laplacian u = -2 pi^2 sin(pi x) sin(pi y)`` on the unit square with ``u = 0``
  on the boundary, trained first-order: exact input derivatives by autograd, Adam on the
  weights;
- 1-D heat, ``u_t = 0.1 u_xx``, trained without back-propagation, as on hardware without a
  backward pass: the derivatives in the residual come from network values at shifted points
  (central finite differences) and the tensor-train weights from zeroth-order estimates.

The plots show the prediction, the exact solution and the error.
"""

import matplotlib.pyplot as plt

from hybridnet import PINNSolver
from hybridnet.pinn import problems
from hybridnet.plotting import plot_solution

poisson = problems.poisson_2d()

# %%
# First-order training
# --------------------
# 2,000 Adam steps on fresh uniform collocation points (256 inside, 128 on the boundary per
# step).
solver = PINNSolver(poisson, hidden_layer_sizes=(64, 64), derivatives="autograd", max_iter=2000,
                    random_state=0).fit()
print(f"first-order: relative L2 error {solver.relative_l2_error():.2e}, "
      f"{solver.fit_time_:.1f} s")
plot_solution(solver, title="Poisson, autograd + Adam")
plt.show()

# %%
# Without back-propagation
# ------------------------
# A tensor-train network of rank 4 (801 numbers to estimate instead of 4,417) trained by
# central differences along 10 random directions per step; ``u_t`` and ``u_xx`` come from the
# network's values at ``x +- h`` along each axis. Every perturbed network is evaluated at all
# shifted points of the step in one batched call: no backward pass anywhere. The
# benchmark's longer runs are in doc/pinn.md.
heat = PINNSolver(problems.heat_1d(), derivatives="finite_difference", training="bp_free",
                  tt_rank=4, zo_estimator="central_rge", zo_samples=10, learning_rate=3e-2,
                  max_iter=600, random_state=0).fit()
print(f"heat, BP-free, TT rank 4: relative L2 error {heat.relative_l2_error():.2e}, "
      f"{heat.fit_time_:.1f} s, {heat.n_network_evaluations_:,} network evaluations")
plot_solution(heat, title="heat, finite differences + zeroth-order, TT rank 4")
plt.show()
