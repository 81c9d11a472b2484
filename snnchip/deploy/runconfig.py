"""Lava run configurations that pick process models by tag.

`Loihi2SimCfg(select_tag='fixed_pt')` cannot compile netx's input process models, so, like lava-dl's
own tests, we select the first process model whose tags contain the wanted one.
"""
from ..stack import require_lava

require_lava()

from lava.magma.core.run_configs import RunConfig  # noqa: E402

TAGS = {"fixed": "fixed_pt", "float": "floating_pt"}


class TagRunConfig(RunConfig):
    """Select, for every process, the first process model tagged `select_tag` ('fixed_pt' or 'floating_pt')."""

    def __init__(self, select_tag: str = "fixed_pt") -> None:
        super().__init__(custom_sync_domains=None)
        self.select_tag = select_tag

    def select(self, process, proc_models):
        for model in proc_models:
            if self.select_tag in model.tags:
                return model
        raise RuntimeError(f"no '{self.select_tag}' process model for {type(process).__name__}")
