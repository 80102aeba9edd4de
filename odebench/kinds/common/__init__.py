"""What the study kinds share: field checks and choices, eps models, order fits, report text.

Every kind imports these from here and never from another kind, so kinds stay independent
of each other (an import-linter contract in pyproject.toml checks it).
"""

from ..._tensor import one_thread
from . import fields
from .checks import (
    any_sampler_names,
    device,
    in_unit,
    model_names,
    non_negative,
    positive,
    sampler_names,
    spacing_names,
    start_time,
    tolerance,
)
from .cost import cell_cost
from .fits import (
    ORDER_CELL_KEYS,
    VERDICT_MARK,
    format_order_summary,
    format_order_table,
    nfe_rule,
    order_summary_text,
    summarize_orders,
)
from .networks import card_problem, eps_model, trained_network
from .report import cell_blocks, read_summary, read_table

__all__ = [
    "ORDER_CELL_KEYS",
    "VERDICT_MARK",
    "any_sampler_names",
    "card_problem",
    "cell_blocks",
    "cell_cost",
    "device",
    "eps_model",
    "fields",
    "format_order_summary",
    "format_order_table",
    "in_unit",
    "model_names",
    "nfe_rule",
    "non_negative",
    "one_thread",
    "order_summary_text",
    "positive",
    "read_summary",
    "read_table",
    "sampler_names",
    "spacing_names",
    "start_time",
    "summarize_orders",
    "tolerance",
    "trained_network",
]
