"""``EpsMLP``: a small eps-network for low-dimensional problems (the shipped GMM networks).

``EpsMLP(x, t) -> eps`` takes a batch x of shape (B, dim) and the continuous forward time t of
shape (B,) in [0, 1] (card ``"time_input": "t"``) and returns the noise prediction eps. Its
output is an eps prediction in every configuration; two things make a small MLP accurate over
the whole range t in [1e-3, 1] of the linear VP schedule, where eps varies on the scale
sigma(t) ~ (0.1 t)^(1/2) as t -> 0:

- **Time features from the log-SNR.** The network computes lambda(t) = log(alpha / sigma) of
  its schedule (t clamped to ``t_floor``, so t = 0 is accepted) and embeds v = lambda / 8 as
  [v, sin(pi k v), cos(pi k v), k = 1..fourier]. lambda spreads the noise levels evenly (a
  decade of t near 0 is a fixed step in lambda), where raw t would crowd t < 0.01 into a
  sliver of the input range.
- **Gaussian preconditioning** (``precondition="gaussian"``, the default). With the data mean
  m and covariance Sigma = U diag(l) U^T (buffers, set from data by ``fit_gaussian`` before
  training and saved with the weights), the noisy marginal of a Gaussian with those moments
  has covariance C(t) = abar Sigma + sigma^2 I and exact eps_G(x, t) = sigma C(t)^-1 (x - alpha m)
  (the linear "Wiener filter" noise prediction). The network returns
  ``eps = eps_G(x, t) + F(z, t)`` with the whitened input z = C(t)^(-1/2) U^T (x - alpha m):
  z has unit variance in every direction at every t, so the MLP F resolves structure on the
  sigma scale near t = 0 without huge weights, and the skip eps_G already carries the part of
  eps that is linear in x (for data near a subspace, the whole normal component). F learns the
  non-Gaussian residual (mixture structure), which is O(1) at every t.
  ``precondition="scale"`` instead feeds x / sqrt(abar s_d^2 + sigma^2) (s_d^2 the mean
  per-coordinate second moment of the data) with no skip: the plain EDM-style input scaling.

F is a residual SiLU MLP: a linear input layer on [z, time features], ``layers`` residual
blocks h + W2 SiLU(W1 SiLU(h) + V emb) that each see the time embedding again, and a linear
output layer initialised to zero (so an untrained network is exactly eps_G). Every
constructor argument is a JSON value, as a network card stores them.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from ..schedules import get as get_schedule
from ..schedules.prediction import from_pair

PRECONDITIONS = ("gaussian", "scale")


class _Block(nn.Module):
    """h + W2 SiLU(W1 SiLU(h) + V emb): a residual block conditioned on the time embedding."""

    def __init__(self, hidden: int, emb: int):
        super().__init__()
        self.lin1 = nn.Linear(hidden, hidden)
        self.time = nn.Linear(emb, hidden)
        self.lin2 = nn.Linear(hidden, hidden)

    def forward(self, h: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        u = self.lin1(nn.functional.silu(h)) + self.time(emb)
        return h + self.lin2(nn.functional.silu(u))


class EpsMLP(nn.Module):
    """eps(x, t) for x of shape (B, dim) and continuous t in [0, 1] of shape (B,).

    Args:
        dim: data dimension.
        hidden: width of the hidden layers.
        layers: number of residual blocks.
        fourier: number of frequencies of the log-SNR time embedding.
        schedule: name of the VP schedule the network is trained on (gives alpha, sigma,
            lambda from t).
        precondition: ``"gaussian"`` (whitened input and Gaussian eps skip) or ``"scale"``
            (input scaled to unit variance, no skip); see the module docstring.
        t_floor: times below it are clamped to it (lambda is infinite at t = 0).
    """

    def __init__(
        self,
        dim: int,
        hidden: int = 128,
        layers: int = 3,
        fourier: int = 8,
        schedule: str = "linear",
        precondition: str = "gaussian",
        t_floor: float = 1e-5,
    ):
        super().__init__()
        if dim < 1 or hidden < 1 or layers < 0 or fourier < 0:
            raise ValueError("dim, hidden must be positive; layers, fourier non-negative")
        if precondition not in PRECONDITIONS:
            raise ValueError(f"precondition must be one of {PRECONDITIONS}, got {precondition!r}")
        self.dim, self.hidden, self.fourier = int(dim), int(hidden), int(fourier)
        self.precondition, self.t_floor = precondition, float(t_floor)
        self.schedule = get_schedule(schedule)
        emb = 1 + 2 * self.fourier
        self.register_buffer("freqs", math.pi * torch.arange(1, self.fourier + 1).float())
        # Data moments: mean, eigenvectors and eigenvalues of the covariance (standard normal
        # until fit_gaussian is called; saved in the state dict with the weights).
        self.register_buffer("mean", torch.zeros(self.dim))
        self.register_buffer("evecs", torch.eye(self.dim))
        self.register_buffer("evals", torch.ones(self.dim))
        self.inp = nn.Linear(self.dim + emb, hidden)
        self.blocks = nn.ModuleList(_Block(hidden, emb) for _ in range(layers))
        self.out = nn.Linear(hidden, self.dim)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    @torch.no_grad()
    def fit_gaussian(self, data: torch.Tensor) -> None:
        """Set the data mean and covariance buffers from samples of the data (B, dim)."""
        data = data.to(torch.float64)
        mean = data.mean(0)
        centred = data - mean
        cov = centred.T @ centred / max(data.shape[0] - 1, 1)
        evals, evecs = torch.linalg.eigh(0.5 * (cov + cov.T))
        self.mean.copy_(mean)
        self.evecs.copy_(evecs)
        self.evals.copy_(evals.clamp_min(1e-8))

    def _coefficients(self, t: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """(log abar, alpha, sigma, lambda) at t, clamped to [t_floor, 1], in float64."""
        tt = t.detach().to(torch.float64).clamp(self.t_floor, 1.0)
        log_abar = self.schedule.log_alpha_bar(tt)
        var = -torch.expm1(log_abar)
        lam = 0.5 * (log_abar - torch.log(var))
        # alpha, sigma at the unclamped t (t = 0 gives sigma = 0, eps_G = 0).
        t0 = t.detach().to(torch.float64).clamp(0.0, 1.0)
        log_abar0 = self.schedule.log_alpha_bar(t0)
        return log_abar0, torch.exp(0.5 * log_abar0), torch.sqrt(-torch.expm1(log_abar0)), lam

    def time_embedding(self, lam: torch.Tensor) -> torch.Tensor:
        """[v, sin(pi k v), cos(pi k v)] with v = lambda / 8, shape (B, 1 + 2 fourier)."""
        v = (lam / 8.0)[:, None].to(self.freqs.dtype)
        arg = v * self.freqs
        return torch.cat([v, torch.sin(arg), torch.cos(arg)], dim=1)

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        if x.ndim != 2 or x.shape[1] != self.dim:
            raise ValueError(f"x must have shape (B, {self.dim}), got {tuple(x.shape)}")
        t = torch.as_tensor(t, device=x.device)
        if t.ndim == 0:
            t = t.expand(x.shape[0])
        z, emb, skip = self._inputs(x, t)
        h = self.inp(torch.cat([z, emb], dim=1))
        for block in self.blocks:
            h = block(h, emb)
        out = self.out(nn.functional.silu(h))
        return out if skip is None else out + skip

    def _inputs(self, x: torch.Tensor, t: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """(whitened input z, time embedding, skip or None) at (x, t), in x's dtype."""
        log_abar, alpha, sigma, lam = self._coefficients(t)
        abar = torch.exp(log_abar)
        dtype = x.dtype
        alpha, sigma = alpha.to(dtype)[:, None], sigma.to(dtype)[:, None]
        emb = self.time_embedding(lam).to(dtype)
        if self.precondition == "gaussian":
            # C(t) eigenvalues abar l + sigma^2 in the data's eigenbasis U.
            c = abar[:, None] * self.evals.to(torch.float64) + (sigma**2).to(torch.float64)
            c = c.to(dtype)
            y = (x - alpha * self.mean) @ self.evecs  # U^T (x - alpha m), rotated
            z = y * torch.rsqrt(c)
            skip = (sigma * y / c) @ self.evecs.T  # sigma C^-1 (x - alpha m)
        else:
            second = float((self.evals.sum() + (self.mean**2).sum()) / self.dim)
            scale = torch.rsqrt(abar * second + (1.0 - abar)).to(dtype)[:, None]
            z, skip = x * scale, None
        return z, emb, skip


class PredictionMLP(EpsMLP):
    """``EpsMLP``'s network on any interpolant, predicting any of eps, x0, v or velocity.

    Same layers, time embedding (lambda / 8, lambda taken at t clamped to
    [t_floor, 1 - t_floor] so that both singular ends are accepted) and preconditioning; the
    Gaussian quantities are those of a general interpolant x = alpha x0 + sigma z:
    C(t) = alpha^2 Sigma + sigma^2 I, eps_G = sigma C^-1 (x - alpha m) and
    x0_G = m + alpha Sigma C^-1 (x - alpha m) (both division-free, so exact at alpha = 0 and
    at sigma = 0), and the skip is the Gaussian's prediction of ``prediction``
    (``odebench.schedules.prediction.from_pair``; under flow matching, velocity_G = eps_G - x0_G).
    The MLP learns the non-Gaussian residual of that prediction.

    Args:
        prediction: what the network returns: "eps", "x0", "v" or "velocity" (Lipman et al.
            2023's flow-matching target z - x0 under the "flow" schedule).
        schedule: any schedule name ("flow", "ve", a VP schedule); other arguments as EpsMLP.
    """

    PREDICTIONS = ("eps", "x0", "v", "velocity")

    def __init__(self, dim: int, *, prediction: str = "velocity", schedule: str = "flow", **kw):
        if prediction not in self.PREDICTIONS:
            raise ValueError(f"prediction must be one of {self.PREDICTIONS}, got {prediction!r}")
        super().__init__(dim, schedule=schedule, **kw)
        self.prediction = prediction

    def _inputs(self, x: torch.Tensor, t: torch.Tensor) -> tuple[torch.Tensor, ...]:
        sched, dtype = self.schedule, x.dtype
        tt = t.detach().to(torch.float64).clamp(sched.t_lo, sched.t_hi)
        lam = sched.lambda_(tt.clamp(max(sched.t_lo, self.t_floor), sched.t_hi - self.t_floor))
        alpha, sigma = sched.alpha(tt)[:, None], sched.sigma(tt)[:, None]
        emb = self.time_embedding(lam).to(dtype)
        evals = self.evals.to(torch.float64)
        if self.precondition == "scale":
            second = float((evals.sum() + (self.mean**2).sum()) / self.dim)
            return x * torch.rsqrt(alpha**2 * second + sigma**2).to(dtype), emb, None
        c = alpha**2 * evals + sigma**2
        y = (x - alpha.to(dtype) * self.mean) @ self.evecs  # U^T (x - alpha m)
        z = y * torch.rsqrt(c).to(dtype)
        eps_g = ((sigma / c).to(dtype) * y) @ self.evecs.T
        x0_g = self.mean + ((alpha * evals / c).to(dtype) * y) @ self.evecs.T
        return z, emb, from_pair(self.prediction, x0_g, eps_g, x, tt, sched)
