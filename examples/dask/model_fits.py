"""Fit one model per regularisation strength on a Dask cluster, and keep the best.

    python examples/dask/model_fits.py run --dask-address tcp://scheduler:8786

Without --dask-address (or $AIOFLOW_DASK_ADDRESS) a local Dask cluster is started for the run.
The `fit` tasks run on the cluster's workers; they read the data from the run's store and write
their coefficients there, so only keys travel between this process and the workers.
"""

import os
import socket

from aioflow import FlowSpec, Parameter, step


def ridge(xs, ys, alpha):
    """The slope and intercept of y = a*x + b, least squares with an L2 penalty on a."""
    n = len(xs)
    mean_x, mean_y = sum(xs) / n, sum(ys) / n
    sxy = sum((x - mean_x) * (y - mean_y) for x, y in zip(xs, ys, strict=True))
    sxx = sum((x - mean_x) ** 2 for x in xs)
    slope = sxy / (sxx + alpha)
    return slope, mean_y - slope * mean_x


class ModelFitsFlow(FlowSpec):
    """A foreach of model fits on a Dask cluster."""

    points = Parameter("points", default=20_000, help="How many data points to fit.")

    @step
    def start(self):
        """Make the data (stored once; the workers read it from the store)."""
        self.xs = [i / self.points for i in range(self.points)]
        self.ys = [3.0 * x + 1.0 + (0.1 if i % 2 else -0.1) for i, x in enumerate(self.xs)]
        self.alphas = [0.0, 0.01, 0.1, 1.0, 10.0]
        self.next(self.fit, foreach="alphas")

    @step(executor="dask")
    def fit(self):
        """One fit, on a worker."""
        self.alpha = self.input
        self.slope, self.intercept = ridge(self.xs, self.ys, self.alpha)
        self.error = sum(
            (self.slope * x + self.intercept - y) ** 2
            for x, y in zip(self.xs, self.ys, strict=True)
        ) / len(self.xs)
        self.where = (socket.gethostname(), os.getpid())
        print(f"alpha={self.alpha:g} error={self.error:.4f}")
        self.next(self.pick)

    @step
    def pick(self, inputs):
        """Keep the fit with the smallest error."""
        best = min(inputs, key=lambda fit: fit.error)
        self.best_alpha, self.slope, self.intercept = best.alpha, best.slope, best.intercept
        self.workers = sorted({fit.where for fit in inputs})
        self.next(self.end)

    @step
    def end(self):
        print(f"best alpha {self.best_alpha:g}: y = {self.slope:.3f} x + {self.intercept:.3f}")


if __name__ == "__main__":
    ModelFitsFlow()
