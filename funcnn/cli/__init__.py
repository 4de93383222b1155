"""The `funcnn` command (`funcnn demo | train | evaluate | predict | summary`) and what only
it uses: the demo, model files, named dataset splits and plots. The library never imports
this package."""

from funcnn.cli.main import main, one_line

__all__ = ["main", "one_line"]
