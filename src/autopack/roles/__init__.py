"""The roles: Planner, Builder and Auditor, their prompts, tools, schemas and context.

See README.md in this folder for what lives where.
"""

from autopack.roles.auditor import VERDICT_SCHEMA, audit
from autopack.roles.brief import BuildResult, PhaseBrief
from autopack.roles.builder import BuilderLimits, build, builder_prompt
from autopack.roles.planner import draft_plan
from autopack.roles.repomap import repo_map

__all__ = [
    "VERDICT_SCHEMA",
    "BuildResult",
    "BuilderLimits",
    "PhaseBrief",
    "audit",
    "build",
    "builder_prompt",
    "draft_plan",
    "repo_map",
]
