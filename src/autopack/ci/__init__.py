"""CI contracts: the workflow and pre-commit config Autopack writes into the projects it
builds, ``autopack verify-proof`` over run branches, and ``autopack doctor``."""

from autopack.ci.contract import Contract, ContractError, contract_for, write_contract
from autopack.ci.doctor import Finding, diagnose
from autopack.ci.proofs import BranchReport, ProofCheckError, check_all, check_branch

__all__ = [
    "BranchReport",
    "Contract",
    "ContractError",
    "Finding",
    "ProofCheckError",
    "check_all",
    "check_branch",
    "contract_for",
    "diagnose",
    "write_contract",
]
