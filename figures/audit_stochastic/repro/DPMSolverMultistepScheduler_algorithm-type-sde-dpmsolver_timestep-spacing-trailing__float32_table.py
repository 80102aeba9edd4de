"""DPMSolverMultistepScheduler {"algorithm_type": "sde-dpmsolver++", "timestep_spacing":
"trailing"}: float32 table (table deviation)

odebench's audit wrote this stand-alone reproduction (it imports torch, numpy, diffusers).
diffusers:  0.42.1 (the version audited; the one running it is printed)
scheduler:  DPMSolverMultistepScheduler, config {"algorithm_type": "sde-dpmsolver++",
            "timestep_spacing": "trailing"} on the table ddpm-linear-1000
finding:    float32 table: alphas_cumprod stored as float32 (max rel. deviation 3.6e-07 from
            the float64 table)
odebench:   table deviation 3.6e-07 -> 1.0e-14 with float64 tables: float32 tables
            (alphas_cumprod, sigmas, lambdas)
cause:      float32 tables (alphas_cumprod, sigmas, lambdas)
fix:        float64 tables (odebench's counterfactual, inline)
Exact model outputs of data N(mu, diag(s2)); float64 latents; exact end states.
"""

import sys
import warnings

import diffusers
import numpy as np
import torch

torch.set_num_threads(1)
CLASS = diffusers.DPMSolverMultistepScheduler
CONFIG = {
    "num_train_timesteps": 1000, "beta_schedule": "linear", "beta_start": 0.0001,
    "beta_end": 0.02, "prediction_type": "epsilon", "algorithm_type": "sde-dpmsolver++",
    "timestep_spacing": "trailing",
}
BETAS = np.linspace(1e-4, 0.02, 1000)
KNOTS_LOG = np.concatenate([[0.0], np.cumsum(np.log1p(-BETAS))])  # log alpha_bar at KNOTS_T
DTYPE = torch.float64
PROBE_N = 50


def original(**over):
    """A fresh scheduler, as a pipeline makes one."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return CLASS.from_config({**CONFIG, **over})


def table_deviation(make):
    """The largest relative deviation of the scheduler's alphas_cumprod from float64's."""
    sch = make()
    sch.set_timesteps(PROBE_N)
    ours = torch.as_tensor(np.exp(KNOTS_LOG[1:]))
    return float(((torch.as_tensor(sch.alphas_cumprod).to(DTYPE) - ours).abs() / ours).max())


class _Wide:
    """A module seen with its 32- and 16-bit float names meaning float64."""

    def __init__(self, module, names, wide):
        self._module, self._names, self._wide = module, names, wide

    def __getattr__(self, name):
        return self._wide if name in self._names else getattr(self._module, name)


class Float64View:
    """Within the block, the diffusers modules defining CLASS and its bases read
    torch.float32 / np.float32 (and 16-bit names) as float64; their globals are restored."""

    def __enter__(self):
        low = ("float32", "float", "float16", "half", "bfloat16")
        views = {
            id(torch): _Wide(torch, low, torch.float64),
            id(np): _Wide(np, ("float32", "single", "float16", "half"), np.float64),
        }
        self.saved = []
        for name in {k.__module__ for k in CLASS.__mro__} - {"builtins", __name__}:
            space = vars(sys.modules[name]) if name in sys.modules else {}
            for key, value in list(space.items()):
                if value is torch or value is np:
                    self.saved.append((space, key, value))
                    space[key] = views[id(value)]

    def __exit__(self, *exc):
        for space, key, value in reversed(self.saved):
            space[key] = value


def fix_float64_tables(make):
    """float64 tables: the constructor and set_timesteps run with float32 meaning float64."""

    def make_fixed(**over):
        with Float64View():
            sch = make(**over)
        base = type(sch)

        class Float64Tables(base):
            def set_timesteps(self, *args, **kwargs):
                with Float64View():
                    return base.set_timesteps(self, *args, **kwargs)

        sch.__class__ = Float64Tables
        return sch

    return make_fixed


def measure(make):
    """Print the defect's numbers; return its value."""
    value = table_deviation(make)
    print(f"  alphas_cumprod: largest relative deviation from the float64 table {value:.2e}")
    return value


def main(argv):
    print(f"diffusers {diffusers.__version__}, {CLASS.__name__}, {CONFIG}")
    print("as diffusers runs it:")
    before = measure(original)
    print("with the counterfactual (float64_tables):")
    after = measure(fix_float64_tables(original))
    print(f"RESULT table deviation: {before:.3e} -> {after:.3e}")


if __name__ == "__main__":
    main(sys.argv)
