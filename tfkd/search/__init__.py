"""``tfkd search``: the best model that fits a device budget, and its Pareto front.

:mod:`~tfkd.search.space` reads the budgets and the search space, :mod:`~tfkd.search.feasibility`
measures a candidate in seconds without training, :mod:`~tfkd.search.study` drives Optuna
and the pipeline, :mod:`~tfkd.search.report` writes ``search.md``, the plot and one
``pipeline.yaml`` per front point; the click command is :mod:`tfkd.cli.search`.
"""
