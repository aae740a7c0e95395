"""Where phases work: git worktrees, branches and commits (``git``), and the sandboxed
command runner (``runner``) that tests and the Builder's ``run`` tool go through."""
