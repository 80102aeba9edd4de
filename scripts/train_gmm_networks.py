"""Train the shipped networks of the embedded GMM problems: gmm-2d-mlp, gmm-64d-mlp (eps, linear
VP schedule) and gmm-2d-flow-mlp (velocity, flow matching).

    python scripts/train_gmm_networks.py                 # all three, into odebench/assets/networks
    python scripts/train_gmm_networks.py --only gmm-2d-mlp --steps 2000 --out /tmp/nets

Each network (``odebench.models.mlp.EpsMLP``) is trained on its problem under the linear VP
schedule with the eps-prediction loss E |net(x_t, t) - n|^2, x_t = alpha x_0 + sigma n:

- data: a pool of exact samples x_0 from ``problem.sample`` (fixed seed), drawn once (the
  networks are far smaller than the pool; fresh noise n and t every step);
- t: half of each batch uniform on [1e-3, 1], half log-uniform on [1e-4, 1], so the decades
  near t = 0, where eps varies on the scale sigma(t) ~ (0.1 t)^(1/2), get as many samples as
  [0.1, 1] does and solvers run down to t_min = 1e-3 (and a little below) stay in the
  training range;
- Adam, a linear warm-up over the first 2% of steps, then cosine decay to 1% of the
  learning rate; float32; a fixed torch seed.

gmm-2d-flow-mlp (``odebench.models.mlp.PredictionMLP``, the same layers and widths as
gmm-2d-mlp) is trained with the flow-matching loss E |net(x_t, t) - (z - x0)|^2,
x_t = (1 - t) x0 + t z (Lipman et al. 2023; Liu et al. 2023), with the same data pool,
optimiser, learning-rate schedule, steps and seed; its t: half of each batch uniform on
[0, 1], half logit-uniform (logit t uniform on [logit 1e-4, logit(1 - 1e-4)], i.e. uniform in
the log-SNR lambda, over exactly the range its time embedding sees: ``t_floor`` = 1e-4), so
both ends get a fixed share of samples per decade (SD3's
logit-normal t, Esser et al. 2024, puts almost none below t = 0.01, where the solvers end).
Its card records the RMS error of its velocity against the exact velocity
(``problem.prediction("velocity")``) and the relative error of the eps it gives through
``NetworkModel`` on exact samples of p_t at several t.

The loss is the per-coordinate mean squared error; ``final_loss`` on the card is its mean
over the last 1% of steps (the Bayes floor is not 0: it is E Var[n | x_t] per coordinate).
The card also records the wall time, the torch version and a small on-manifold eps-error
summary (``odebench.network_error.eps_error_profile``, "on" rows).
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

import torch
from safetensors.torch import save_file

import odebench as ob
from odebench.models.loading import sha256
from odebench.models.mlp import EpsMLP, PredictionMLP
from odebench.network_error import eps_error_profile
from odebench.schedules.prediction import from_pair

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_OUT = ROOT / "odebench" / "assets" / "networks"

#: name -> (problem, architecture kwargs, training settings).
NETWORKS: dict[str, dict] = {
    "gmm-2d-mlp": {
        "problem": "gmm-2d",
        "kwargs": {"dim": 2, "hidden": 128, "layers": 3, "fourier": 8},
        "steps": 24000,
        "batch_size": 1024,
        "lr": 2e-3,
        "seed": 0,
        "pool": 1 << 20,
    },
    "gmm-64d-mlp": {
        "problem": "gmm-64d",
        "kwargs": {"dim": 64, "hidden": 192, "layers": 2, "fourier": 8},
        "steps": 12000,
        "batch_size": 1024,
        "lr": 2e-3,
        "seed": 0,
        "pool": 1 << 19,
    },
}
#: Flow training times and the network's time embedding both cover [FLOW_T_FLOOR,
#: 1 - FLOW_T_FLOOR] (the embedding is clamped outside: no untrained lambda is extrapolated).
FLOW_T_FLOOR = 1e-4
#: The flow-matching velocity network of gmm-2d: gmm-2d-mlp's size and training settings.
NETWORKS["gmm-2d-flow-mlp"] = {
    **NETWORKS["gmm-2d-mlp"],
    "kwargs": {**NETWORKS["gmm-2d-mlp"]["kwargs"], "t_floor": FLOW_T_FLOOR},
    "schedule": "flow",
    "prediction": "velocity",
}

SCHEDULE = "linear"
T_UNIFORM = (1e-3, 1.0)
T_LOG = (1e-4, 1.0)
T_SAMPLING = (
    "half of each batch t ~ U[1e-3, 1], half log t ~ U[log 1e-4, 0] (log-uniform on [1e-4, 1])"
)
EVAL_TS = (0.9, 0.5, 0.1, 0.01, 0.001)
#: logit t ~ U[-FLOW_LOGIT, FLOW_LOGIT]: t logit-uniform on [FLOW_T_FLOOR, 1 - FLOW_T_FLOOR].
FLOW_LOGIT = math.log((1.0 - FLOW_T_FLOOR) / FLOW_T_FLOOR)
FLOW_T_SAMPLING = (
    "half of each batch t ~ U[0, 1], half logit t ~ U[-log 9999, log 9999] "
    "(logit-uniform on [1e-4, 1 - 1e-4], the range of the network's time embedding); "
    "not SD3's logit-normal"
)
FLOW_EVAL_TS = (1.0, 80 / 81, 0.9, 0.5, 0.1, 0.01, 0.001)


def sample_flow_times(n: int, generator: torch.Generator) -> torch.Tensor:
    """n flow-matching training times: half uniform on [0, 1], half logit-uniform."""
    half = n // 2
    u = torch.rand(n, generator=generator, dtype=torch.float64)
    logit = FLOW_LOGIT * (2.0 * u[half:] - 1.0)
    return torch.cat([u[:half], torch.sigmoid(logit)])


def noisy_pair(sched, spec: dict, x0, t, noise) -> tuple[torch.Tensor, torch.Tensor]:
    """(x_t, regression target) for a batch: alpha x0 + sigma n and the network's prediction
    of both (n itself for an eps network)."""
    if spec.get("prediction", "eps") == "eps":  # the VP eps networks, as they were trained
        log_abar = sched.log_alpha_bar(t)
        alpha = torch.exp(0.5 * log_abar).to(torch.float32)[:, None]
        sigma = torch.sqrt(-torch.expm1(log_abar)).to(torch.float32)[:, None]
        return alpha * x0 + sigma * noise, noise
    alpha = sched.alpha(t).to(torch.float32)[:, None]
    sigma = sched.sigma(t).to(torch.float32)[:, None]
    xt = alpha * x0 + sigma * noise
    return xt, from_pair(spec["prediction"], x0, noise, xt, t.to(torch.float32), sched)


def sample_times(n: int, generator: torch.Generator) -> torch.Tensor:
    """n training times: the first half uniform on T_UNIFORM, the second log-uniform on T_LOG."""
    half = n // 2
    u = torch.rand(n, generator=generator, dtype=torch.float64)
    lo, hi = T_UNIFORM
    uniform = lo + (hi - lo) * u[:half]
    llo, lhi = math.log(T_LOG[0]), math.log(T_LOG[1])
    loguniform = torch.exp(llo + (lhi - llo) * u[half:])
    return torch.cat([uniform, loguniform])


def data_pool(problem, size: int, generator: torch.Generator) -> torch.Tensor:
    """``size`` samples of the data distribution, float32, drawn in chunks."""
    chunks = [problem.sample(min(65536, size - i), generator) for i in range(0, size, 65536)]
    return torch.cat(chunks).to(torch.float32)


def lr_factor(step: int, steps: int) -> float:
    """Linear warm-up over 2% of the steps, then cosine decay from 1 to 0.01."""
    warm = max(1, steps // 50)
    if step < warm:
        return (step + 1) / warm
    progress = (step - warm) / max(1, steps - warm)
    return 0.01 + 0.99 * 0.5 * (1.0 + math.cos(math.pi * progress))


def train(name: str, spec: dict, steps: int, log_every: int = 1000) -> tuple[EpsMLP, dict]:
    """Train network ``name``; returns it and its training record."""
    torch.manual_seed(spec["seed"])
    gen = torch.Generator().manual_seed(spec["seed"])
    sched = ob.schedules.get(spec.get("schedule", SCHEDULE))
    problem = ob.problems.get(spec["problem"], schedule=sched)
    start = time.perf_counter()
    pool = data_pool(problem, spec["pool"], gen)
    net = build(spec)
    times = sample_times if "prediction" not in spec else sample_flow_times
    net.fit_gaussian(pool)
    opt = torch.optim.Adam(net.parameters(), lr=spec["lr"])
    sched_lr = torch.optim.lr_scheduler.LambdaLR(opt, lambda k: lr_factor(k, steps))
    batch = spec["batch_size"]
    losses = []
    for step in range(steps):
        idx = torch.randint(0, pool.shape[0], (batch,), generator=gen)
        x0 = pool[idx]
        t = times(batch, gen)
        noise = torch.randn(x0.shape, generator=gen)
        xt, target = noisy_pair(sched, spec, x0, t, noise)
        loss = torch.mean((net(xt, t.to(torch.float32)) - target) ** 2)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched_lr.step()
        losses.append(loss.item())
        if log_every and (step + 1) % log_every == 0:
            recent = sum(losses[-log_every:]) / log_every
            print(
                f"{name}: step {step + 1}/{steps} loss {recent:.5f} "
                f"({time.perf_counter() - start:.0f} s)",
                flush=True,
            )
    wall = time.perf_counter() - start
    tail = losses[-max(1, steps // 100) :]
    record = {
        "steps": steps,
        "batch_size": batch,
        "lr": spec["lr"],
        "lr_schedule": "linear warm-up over 2% of steps, then cosine decay to 1% of lr",
        "optimizer": "Adam",
        "seed": spec["seed"],
        "data_pool": spec["pool"],
        "dtype": "float32",
        "loss": "mean over batch and coordinates of (net(x_t, t) - n)^2",
        "final_loss": sum(tail) / len(tail),
        "wall_seconds": round(wall, 1),
        "threads": torch.get_num_threads(),
        "torch_version": torch.__version__,
        "t_sampling": T_SAMPLING,
    }
    if "prediction" in spec:
        record["loss"] = (
            "mean over batch and coordinates of (net(x_t, t) - (z - x0))^2, "
            "x_t = (1 - t) x0 + t z (flow matching)"
        )
        record["t_sampling"] = FLOW_T_SAMPLING
    return net.eval(), record


def build(spec: dict) -> torch.nn.Module:
    """The untrained network of ``spec``."""
    if "prediction" not in spec:
        return EpsMLP(**spec["kwargs"], schedule=SCHEDULE)
    return PredictionMLP(**spec["kwargs"], schedule=spec["schedule"], prediction=spec["prediction"])


def prediction_error(model, problem, ts, n: int = 2048, seed: int = 1) -> dict:
    """RMS error of the network's own output against the exact prediction of its kind, and the
    relative RMS error of the eps it gives, on ``n`` exact samples of p_t at each t."""
    gen = torch.Generator().manual_seed(seed)
    exact = problem.prediction(model.prediction)
    rms, rel_eps = [], []
    for t in ts:
        x = problem.sample_marginal(n, t, gen)
        tt = torch.tensor(t, dtype=torch.float64)
        err = model.native(x, tt) - exact(x, tt)
        rms.append(round(float(torch.sqrt(torch.mean(err**2))), 5))
        eps = problem.eps(x, tt)
        eps_err = torch.sqrt(torch.mean((model(x, tt) - eps) ** 2) / torch.mean(eps**2))
        rel_eps.append(round(float(eps_err), 5))
    return {
        "where": f"on manifold: x ~ p_t exact samples, {n} points, seed {seed}",
        "metric": (
            f"rms_error: RMS over points and coordinates of the {model.prediction} output "
            f"minus the exact {model.prediction} (problem.prediction); eps_rel_error: relative "
            "RMS error of the eps NetworkModel gives"
        ),
        "t": [round(t, 16) for t in ts],
        "rms_error": rms,
        "eps_rel_error": rel_eps,
    }


def write(name: str, spec: dict, net: EpsMLP, record: dict, out: Path) -> Path:
    """Write NAME.safetensors (float32) and its card NAME.json; return the card path."""
    out.mkdir(parents=True, exist_ok=True)
    weights = out / f"{name}.safetensors"
    state = {k: v.detach().to(torch.float32).contiguous() for k, v in net.state_dict().items()}
    save_file(state, str(weights), metadata={"name": name})
    weights.chmod(0o644)  # safetensors writes 0600
    if "prediction" in spec:
        return write_prediction_card(name, spec, net, record, weights)
    sched = ob.schedules.get(SCHEDULE)
    problem = ob.problems.get(spec["problem"], schedule=sched)
    model = ob.models.NetworkModel(net, time_input="t", name=name)
    rows = eps_error_profile(
        model, problem, EVAL_TS, n=2048, generator=torch.Generator().manual_seed(1)
    )
    card = {
        "name": name,
        "description": (
            f"EpsMLP eps-network for the embedded problem {spec['problem']!r} "
            f"under the {SCHEDULE} VP schedule (scripts/train_gmm_networks.py)"
        ),
        "architecture": {"class": "eps-mlp", "kwargs": {**spec["kwargs"], "schedule": SCHEDULE}},
        "weights": weights.name,
        "sha256": sha256(weights),
        "parameters": sum(p.numel() for p in net.parameters()),
        "data": spec["problem"],
        "schedule": SCHEDULE,
        "parametrization": "eps",
        "time_input": "t",
        "T": None,
        "training": record,
        "eps_error": {
            "where": "on manifold: x ~ p_t exact samples, 2048 points, seed 1",
            "metric": "relative RMS error of eps against the exact eps",
            "t": list(EVAL_TS),
            "rel_error": [round(r["rel_error"], 5) for r in rows if r["where"] == "on"],
        },
    }
    path = out / f"{name}.json"
    path.write_text(json.dumps(card, indent=2) + "\n")
    return path


def write_prediction_card(
    name: str, spec: dict, net: PredictionMLP, record: dict, weights: Path
) -> Path:
    """The card of a PredictionMLP (any schedule and prediction), next to its weights."""
    sched, kind = spec["schedule"], spec["prediction"]
    problem = ob.problems.get(spec["problem"], schedule=sched)
    model = ob.models.NetworkModel(net, time_input="t", prediction=kind, schedule=sched, name=name)
    card = {
        "name": name,
        "description": (
            f"PredictionMLP {kind}-network for the embedded problem {spec['problem']!r} "
            f"under the {sched!r} schedule (scripts/train_gmm_networks.py)"
        ),
        "architecture": {
            "class": "prediction-mlp",
            "kwargs": {**spec["kwargs"], "schedule": sched, "prediction": kind},
        },
        "weights": weights.name,
        "sha256": sha256(weights),
        "parameters": sum(p.numel() for p in net.parameters()),
        "data": spec["problem"],
        "schedule": sched,
        "parametrization": kind,
        "time_input": "t",
        "time_scale": 1.0,
        "T": None,
        "training": record,
        "prediction_error": prediction_error(model, problem, FLOW_EVAL_TS),
    }
    path = weights.parent / f"{name}.json"
    path.write_text(json.dumps(card, indent=2) + "\n")
    return path


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", choices=sorted(NETWORKS), help="train only this network")
    parser.add_argument("--steps", type=int, help="override the number of training steps")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="output folder")
    parser.add_argument(
        "--threads", type=int, default=1, help="torch threads (1: small matmuls, shared CPU)"
    )
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    for name, spec in NETWORKS.items():
        if args.only and name != args.only:
            continue
        steps = args.steps if args.steps is not None else spec["steps"]
        net, record = train(name, spec, steps)
        card = write(name, spec, net, record, args.out)
        size = (args.out / f"{name}.safetensors").stat().st_size
        print(
            f"{name}: {record['wall_seconds']} s, final loss {record['final_loss']:.5f}, "
            f"{size / 1024:.0f} KiB -> {card}",
            flush=True,
        )
        written = json.loads(card.read_text())
        print(json.dumps(written.get("eps_error", written.get("prediction_error"))), flush=True)


if __name__ == "__main__":
    main()
