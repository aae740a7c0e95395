"""The engine: the pure decider, the phase steps, and the executors that carry them out.

``create.create_run`` turns a validated plan into a stored run with its own branch; an
executor (``local.LocalExecutor`` here, the Temporal driver elsewhere) runs it;
``commands`` holds what changes a run from outside. Importing this package loads
nothing: ``decider`` stays pure (no store, no git, no clock).
"""
