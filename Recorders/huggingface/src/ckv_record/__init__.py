"""ckv-record: attention traces (.ckvt) of a Hugging Face model, for ckv-sim's replay and plan.

The trace format is specified in ckv-sim's Docs/trace-format.md; the tasks come from
`ckv-sim tasks export`, so task generation and the policies stay implemented once, in ckv-sim.
"""

__version__ = "0.1.0"
